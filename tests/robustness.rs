//! The robustness suite against a test double that "crashes" (goes
//! silent for good) on a tab in its start line: the report must name the
//! input after which it stopped answering. Loopback, bounded.

use acorn::conformance::robustness::{self, Options, RobustnessError};
use std::net::UdpSocket;
use std::time::Duration;

/// A peer that answers every datagram naming a TX-ID with `200 OK`, until
/// a start line holds a tab; then it never answers again.
fn fragile_peer() -> std::net::SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65_535];
        let mut crashed = false;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let d = &buf[..n];
            let start = d.split(|&c| c == b'\n').next().unwrap_or(b"");
            if start.contains(&b'\t') {
                crashed = true;
            }
            if crashed {
                continue;
            }
            let text = String::from_utf8_lossy(d);
            if let Some(tx) = text.lines().find_map(|l| l.strip_prefix("TX-ID: ")) {
                let reply = format!("ACORN/1.0 200 OK\r\nTX-ID: {}\r\n\r\n", tx.trim());
                let _ = sock.send_to(reply.as_bytes(), from);
            }
        }
    });
    addr
}

#[test]
fn a_peer_that_crashes_on_a_tab_stops_answering_after_that_case() {
    let addr = fragile_peer();
    let opts = Options {
        count: 40,
        probe_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let inputs = robustness::generate(&opts, &[]);
    let first_tab = inputs
        .iter()
        .position(|i| {
            i.bytes
                .split(|&c| c == b'\n')
                .next()
                .unwrap()
                .contains(&b'\t')
        })
        .unwrap()
        + 1;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(robustness::run(addr, &inputs, &opts)).unwrap();
    let (n, input) = report
        .stopped_after
        .clone()
        .expect("the peer stopped answering");
    assert_eq!(n, first_tab);
    assert_eq!(report.sent, n, "the run stops at the first silence");
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "stopped answering after case {n}: grammar:tab-in-start-line"
        )),
        "{text}"
    );
    assert!(input.bytes.starts_with(b"GET\t"));
    // It answers the unparsable inputs before the tab with 200: wrong.
    assert!(
        report.wrong.iter().any(|w| w.why.contains("answered 200")),
        "{text}"
    );
}

#[test]
fn hostile_input_goes_only_to_loopback_unless_allowed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = Options::default();
    for target in [
        "192.0.2.1:9",
        "0.0.0.0:9",
        "224.0.0.1:9",
        "255.255.255.255:9",
    ] {
        let r = rt.block_on(robustness::run(target.parse().unwrap(), &[], &opts));
        assert!(
            matches!(r, Err(RobustnessError::Target(..))),
            "{target}: {r:?}"
        );
    }
}

/// Our own runtime server (what `acorn-cli listen` runs) against the
/// grammar's inputs, every `reject-*` case of the corpus and seeded
/// mutations: it answers every probe and never answers a PDU that does
/// not parse with a 2xx or with more than 3x its bytes.
#[test]
fn the_runtime_server_survives_the_suite_and_answers_nothing_wrongly() {
    let mut corpus: Vec<(String, Vec<u8>)> = std::fs::read_dir("corpus/pdu")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("reject-") && name.ends_with(".acorn")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    corpus.sort();
    assert!(corpus.len() > 100, "the corpus's reject cases are found");
    let opts = Options {
        count: corpus.len() + 150,
        rate: 2_000,
        ..Options::default()
    };
    let inputs = robustness::generate(&opts, &corpus);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let (peer, mut incoming, _events) =
            acorn::runtime::PeerBuilder::new(acorn::engine::Config::default())
                .udp("127.0.0.1:0".parse().unwrap())
                .start()
                .await
                .unwrap();
        tokio::spawn(async move {
            while let Some(req) = incoming.recv().await {
                let _ = req.respond(acorn::wire::PduBuilder::reply(200, "OK").unwrap());
            }
        });
        let addr = peer.udp_addr().unwrap();
        robustness::run(addr, &inputs, &opts).await.unwrap()
    });
    assert_eq!(report.sent, inputs.len(), "{report}");
    assert_eq!(report.stopped_after, None, "{report}");
    assert!(report.wrong.is_empty(), "{report}");
}
