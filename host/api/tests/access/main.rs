//! People through the router, with real SQLite storage, as one test binary (the stories share
//! its build and link): signing in and sessions, the permission matrix, tenants kept apart, and
//! what a tenant's admins keep for themselves.

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod permissions;
mod signin;
mod tenancy;
mod tenant_admin;
