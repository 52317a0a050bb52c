//! winapp-operator: runs Windows workloads described by `WindowsApp` resources on hybrid clusters.
