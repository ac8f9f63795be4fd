//! The codecs over real loopback sockets: 10,000 PDUs through `Framed`
//! (TCP) and `UdpFramed` (UDP). Every test is bounded by a timeout.

use acorn::codec::{CodecError, DatagramCodec, StreamCodec};
use acorn::wire::{ErrorKind, Pdu, PduBuilder};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::udp::UdpFramed;

const N: u64 = 10_000;
const LIMIT: Duration = Duration::from_secs(60);

/// The body of PDU `i`: varied lengths (empty for every fourth), and bytes
/// that look like a head end so a framing slip would show.
fn body(i: u64) -> Bytes {
    if i % 4 == 0 {
        return Bytes::new();
    }
    let len = (i * 37 % 1500) as usize;
    let mut b: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
    if len > 10 {
        b[3..7].copy_from_slice(b"\r\n\r\n");
    }
    Bytes::from(b)
}

fn pdu(i: u64) -> PduBuilder {
    let mut b = PduBuilder::request("PUT", "/loop").unwrap();
    b.header("Seq", i.to_string()).unwrap();
    b.header("Message-ID", format!("m-{i}")).unwrap();
    b.body(body(i));
    b
}

fn check(p: &Pdu, i: u64) {
    assert_eq!(p.seq().unwrap(), Some(i), "PDU out of order or lost");
    assert_eq!(p.message_id().unwrap(), Some(format!("m-{i}").as_str()));
    assert_eq!(p.body(), &body(i)[..], "body of PDU {i}");
}

/// A loopback TCP server that takes one connection and runs `serve` on it
/// framed by a default `StreamCodec`, and a client socket connected to it.
async fn one_connection<T, F>(
    serve: impl FnOnce(Framed<TcpStream, StreamCodec>) -> F + Send + 'static,
) -> (tokio::task::JoinHandle<T>, TcpStream)
where
    F: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        serve(Framed::new(sock, StreamCodec::default())).await
    });
    (server, TcpStream::connect(addr).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_carries_10k_pdus_intact_and_in_order() {
    timeout(LIMIT, async {
        let (server, sock) = one_connection(|mut framed| async move {
            let mut n = 0;
            while let Some(item) = framed.next().await {
                check(&item.unwrap(), n);
                n += 1;
            }
            n
        })
        .await;
        let mut framed = Framed::new(sock, StreamCodec::default());
        for i in 0..N {
            // feed() flushes whenever the write buffer passes its boundary.
            framed.feed(pdu(i)).await.unwrap();
        }
        SinkExt::<PduBuilder>::close(&mut framed).await.unwrap();
        drop(framed);
        assert_eq!(server.await.unwrap(), N);
    })
    .await
    .expect("TCP loopback test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_framing_error_ends_the_stream() {
    timeout(LIMIT, async {
        let (server, mut sock) = one_connection(|mut framed| async move {
            let first = framed.next().await.unwrap().unwrap();
            let err = framed.next().await.unwrap().unwrap_err();
            // Framed stops after a decoder error.
            let after = framed.next().await;
            (first, err, after.is_none())
        })
        .await;
        sock.write_all(
            b"REG / ACORN/1.0\r\n\r\nPUT / ACORN/1.0\r\nContent-Length: +5\r\n\r\nhello",
        )
        .await
        .unwrap();
        let (first, err, ended) = server.await.unwrap();
        assert_eq!(first.method(), Some("REG"));
        assert_eq!(err.kind(), Some(ErrorKind::ContentLength));
        assert!(matches!(err, CodecError::Parse { pdu_start: 19, .. }));
        assert!(ended);
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_close_inside_a_pdu_is_reported() {
    timeout(LIMIT, async {
        let (server, mut sock) =
            one_connection(|mut framed| async move { framed.next().await.unwrap() }).await;
        sock.write_all(b"PUT / ACORN/1.0\r\nContent-Length: 10\r\n\r\nhalf")
            .await
            .unwrap();
        sock.shutdown().await.unwrap();
        match server.await.unwrap() {
            Err(CodecError::TruncatedAtEof {
                buffered: 43,
                expected: Some(49),
                pdu_start: 0,
            }) => {}
            other => panic!("{other:?}"),
        }
    })
    .await
    .expect("timed out");
}

/// The client keeps at most `WINDOW` PDUs in flight (the server echoes each
/// one), so the loopback socket buffers never overflow and every datagram
/// arrives. A garbage datagram injected half-way is an error item for the
/// server, which keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_carries_10k_pdus_and_survives_a_bad_datagram() {
    const WINDOW: u64 = 32;
    timeout(LIMIT, async {
        let server_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server_sock.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut framed = UdpFramed::new(server_sock, DatagramCodec::default());
            let (mut good, mut bad) = (0u64, Vec::new());
            while good < N {
                let (item, from) = framed.next().await.unwrap().unwrap();
                match item {
                    Ok(pdu) => {
                        good += 1;
                        framed.send((pdu, from)).await.unwrap();
                    }
                    Err(e) => bad.push(e.kind),
                }
            }
            bad
        });

        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut framed = UdpFramed::new(sock, DatagramCodec::default());
        let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut seen = vec![false; N as usize];
        let (mut sent, mut got) = (0u64, 0u64);
        while got < N {
            while sent < N && sent - got < WINDOW {
                framed.send((pdu(sent), server_addr)).await.unwrap();
                sent += 1;
                if sent == N / 2 {
                    intruder
                        .send_to(
                            b"PUT / ACORN/1.0\r\nContent-Length: 9\r\n\r\nshort",
                            server_addr,
                        )
                        .await
                        .unwrap();
                }
            }
            let (item, from) = framed.next().await.unwrap().unwrap();
            assert_eq!(from, server_addr);
            let echo = item.expect("echo parses");
            let i = echo.seq().unwrap().unwrap();
            assert!(!seen[i as usize], "duplicate echo {i}");
            seen[i as usize] = true;
            check(&echo, i);
            got += 1;
        }
        assert!(seen.iter().all(|&s| s));
        let bad = server.await.unwrap();
        assert_eq!(bad, vec![ErrorKind::ContentLengthMismatch]);
    })
    .await
    .expect("UDP loopback test timed out");
}
