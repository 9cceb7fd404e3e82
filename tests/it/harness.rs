//! The test harness itself: [`GateBuilder`]'s retry when the port it must
//! name up front is taken before the gate binds it.

use prt_gate::devsso::{builtin_users, DevSso};

use crate::support::*;

/// A port another process holds is refused by the gate ("Address already in
/// use"); the builder starts it on another port, and `public_url` names that
/// one (the login comes back to the gate that started it).
#[tokio::test(flavor = "multi_thread")]
async fn a_gate_whose_port_is_taken_starts_on_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    let gate = GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().try_ports(&[port]).start();
    assert_ne!(gate.addr.port(), port);
    let login = login(&gate, "office@example.com", "", None).await;
    assert!(login.cookie.is_some(), "{login:?}");
}

/// Positive control: with every port it tries taken, the builder gives up
/// after a bounded number of attempts (it does not mistake another server
/// on the port for the gate).
#[tokio::test(flavor = "multi_thread")]
#[should_panic(expected = "prt-gate found no free port in 5 attempts")]
async fn a_gate_gives_up_when_every_port_is_taken() {
    let taken: Vec<std::net::TcpListener> =
        (0..5).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = taken.iter().map(|l| l.local_addr().unwrap().port()).collect();
    let up = Upstream::start().await;
    let sso = DevSso::start("127.0.0.1:0".parse().unwrap(), builtin_users()).await.unwrap();
    GateBuilder::new(up.addr).sso(sso.url()).shipped_policy().try_ports(&ports).start();
}
