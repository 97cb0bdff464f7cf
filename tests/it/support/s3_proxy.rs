//! A fault proxy in front of an S3 endpoint (moto) for the S3 tests.

/// A proxy in front of the endpoint on `upstream_port` that answers the first `fail` requests with `503 SlowDown`
/// (closing the connection) and forwards everything after that; the number of requests
/// it refused.
pub fn slow_down_proxy(
    upstream_port: u16,
    fail: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    let upstream = format!("127.0.0.1:{upstream_port}");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn: TcpStream = conn;
            if counter.load(Ordering::SeqCst) < fail {
                // Read the request (headers and whatever body arrives), then refuse it.
                conn.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                    .ok();
                let mut buf = [0u8; 65536];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                let _ = write!(
                    conn,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            let up = TcpStream::connect(&upstream).unwrap();
            let (mut c2, mut u2) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            let (mut c3, mut u3) = (conn, up);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u3, &mut c3);
                let _ = c3.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (format!("http://{addr}"), refused)
}
