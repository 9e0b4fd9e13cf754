//! Integration tests: the real `idvault` binary on a random port against a temporary data
//! directory, driven over HTTP. One test binary for all areas.

// Test code may unwrap and panic: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_keys;
mod audit;
mod auth;
mod backup;
mod brute_force;
mod cli;
mod config;
mod contract_docs;
mod directory;
mod errors;
mod helpers;
mod http_hardening;
mod import_users;
mod isolation;
mod keyring;
mod keys;
mod limits;
mod logs;
mod metrics;
mod mutations;
mod oauth_server;
mod openapi;
mod outbound;
mod outbound_batch;
mod outbound_connect;
mod persistence;
mod provider_faults;
mod provider_tokens;
mod refresh;
mod replicas;
mod secrets_in_logs;
mod signin;
mod signin_security;
mod ssrf;
mod transfer;
mod trusted_proxies;
mod users;
