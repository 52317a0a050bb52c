//! winapp-operator: runs Windows workloads described by `WindowsApp` resources on hybrid clusters.

pub mod api;
pub mod build;
pub mod crd;
pub mod render;
pub mod validate;
