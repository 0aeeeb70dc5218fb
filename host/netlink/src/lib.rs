//! Every kernel call danm makes (links, addresses, routes, rules, sysctls, netns) behind one trait.
