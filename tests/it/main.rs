//! Integration tests: the real `prt-gate` binary, a real upstream over real
//! HTTP, raw sockets for malformed input. One test binary (STYLE "Tests").

mod support;

mod admin;
mod canary;
mod cluster;
mod config;
mod demo;
mod devsso;
mod django;
mod edges;
mod faults;
mod limits;
mod login;
mod media;
mod policy;
mod policy_gate;
mod proxy;
mod redact;
mod run;
mod session;
