//! Asking this kernel whether it can make a link kind (ipvlan, 802.1q and dummy are compiled out on the build
//! machines), by trying in a scratch namespace.

/// Why this kernel cannot create `links`, probed in a scratch namespace on a thread of its own (so it works from any
/// runtime); `None` if it can. `needed_by` names what needs them in the message. Callers keep the answer in a
/// `OnceLock`.
pub fn missing_link_kinds(needed_by: &str, links: Vec<danm_netlink::NewLink>) -> Option<String> {
    use danm_netlink::Netlink;
    let needed_by = needed_by.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the probe")
            .block_on(async move {
                let ns = match crate::netns::TestNs::new("danm-probe") {
                    Ok(ns) => ns,
                    Err(e) => return Some(e),
                };
                let nl = danm_netlink::RtNetlink::new();
                let mut why = None;
                for link in &links {
                    if let Err(e) = nl.create_link(&ns.ns, link).await {
                        why = Some(format!(
                            "this kernel lacks a link kind {needed_by} needs ({e}); `make kernel-lane` runs this test"
                        ));
                        break;
                    }
                }
                nl.forget_netns(&ns.ns);
                why
            })
    })
    .join()
    .expect("the probe thread")
}
