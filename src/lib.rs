//! winapp-operator: runs Windows workloads described by `WindowsApp` resources on hybrid clusters.

pub mod admission;
pub mod advice;
pub mod api;
pub mod build;
pub mod client;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod doctor;
pub mod election;
pub mod fence;
pub mod gmsa_policy;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod quantity;
pub mod render;
pub mod run;
pub mod schema;
pub mod server;
pub mod validate;
pub mod yaml;
