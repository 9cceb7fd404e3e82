//! Integration tests: the real `prt-gate` binary, a real upstream over real
//! HTTP, raw sockets for malformed input. One test binary (STYLE "Tests").

mod support;

mod admin;
mod audit;
mod auth_edges;
mod canary;
mod cluster;
mod config;
mod demo;
mod deployment;
mod devsso;
mod django;
mod edges;
mod explain_realapp;
mod fast_path;
mod faults;
mod harness;
mod identity;
mod keepalive;
mod layering;
mod limits;
mod login;
mod media;
mod metrics;
mod policy;
mod policy_change;
mod policy_gate;
mod proxy;
mod realapp;
mod redact;
mod run;
mod security_headers;
mod session;
mod upstream_pool;
