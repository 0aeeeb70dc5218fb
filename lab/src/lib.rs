//! The local lab: an embedded Kubernetes-API-compatible server and a pod simulator.
