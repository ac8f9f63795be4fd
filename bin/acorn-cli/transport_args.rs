//! `listen`'s transport limits: the UDP receive buffer and every TCP limit
//! of the runtime (`acorn::runtime::TcpLimits`), as flags.

use crate::duration;
use acorn::runtime::{PeerBuilder, TcpLimits, TcpStats};
use std::time::Duration;

/// The UDP receive buffer `listen` asks for unless told otherwise: 4 MiB,
/// so a burst of datagrams waits in the kernel while the driver is busy
/// (Linux caps it at `net.core.rmem_max`; the size granted is printed).
pub(crate) const DEFAULT_UDP_RECV_BUFFER: usize = 4 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub(crate) struct TransportArgs {
    /// UDP receive buffer (SO_RCVBUF) to ask the kernel for, in bytes; the
    /// size granted is printed at start [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    udp_recv_buffer: Option<usize>,
    /// TCP connections held at once; one accepted beyond it is closed
    /// [default: 1024].
    #[arg(long, value_name = "N")]
    max_tcp_connections: Option<usize>,
    /// TCP connections held at once from one IP address; one beyond it is
    /// closed [default: 64].
    #[arg(long, value_name = "N")]
    max_tcp_connections_per_ip: Option<usize>,
    /// Close a TCP connection whose PDU head takes longer than this from
    /// its first byte (slowloris) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    tcp_header_timeout: Option<Duration>,
    /// Close a TCP connection after this long without a whole PDU, or with
    /// a write blocked [default: 150s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    tcp_idle_timeout: Option<Duration>,
    /// Bytes queued to one TCP connection: past half, its reader pauses;
    /// past it, the connection is closed [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    tcp_write_queue: Option<usize>,
    /// Bytes queued to all TCP connections: past it, the longest queues
    /// are closed [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    tcp_write_queue_total: Option<usize>,
}

impl TransportArgs {
    /// The runtime's TCP limits with these flags applied.
    pub(crate) fn tcp_limits(&self) -> TcpLimits {
        let mut l = TcpLimits::default();
        if let Some(n) = self.max_tcp_connections {
            l.max_connections = n.max(1);
        }
        if let Some(n) = self.max_tcp_connections_per_ip {
            l.max_connections_per_ip = n.max(1);
        }
        if let Some(d) = self.tcp_header_timeout {
            l.header_timeout = d;
        }
        if let Some(d) = self.tcp_idle_timeout {
            l.idle_timeout = d;
        }
        if let Some(n) = self.tcp_write_queue {
            l.max_write_queue = n;
        }
        if let Some(n) = self.tcp_write_queue_total {
            l.max_write_queue_total = n;
        }
        l
    }

    /// `builder` with the receive buffer and the TCP limits.
    pub(crate) fn apply(&self, builder: PeerBuilder) -> PeerBuilder {
        builder
            .udp_recv_buffer(self.udp_recv_buffer.unwrap_or(DEFAULT_UDP_RECV_BUFFER))
            .tcp_limits(self.tcp_limits())
    }
}

/// The line `listen` prints (stderr) at shutdown about its TCP side.
pub(crate) fn stats_line(s: &TcpStats) -> String {
    format!(
        "tcp: accepted {}, refused {} (total limit) {} (per-IP limit), evicted silent {}, header timeouts {}, \
         idle timeouts {}, queue overflows {}, half-closed {}, kept off UDP {}, \
         peak queued bytes {} (one connection {})",
        s.accepted,
        s.refused_total,
        s.refused_per_ip,
        s.evicted_silent,
        s.header_timeouts,
        s.idle_timeouts,
        s.queue_overflows,
        s.half_closed,
        s.kept_off_udp,
        s.peak_queued_bytes,
        s.peak_connection_queue,
    )
}
