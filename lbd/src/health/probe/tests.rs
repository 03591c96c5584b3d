use super::*;

#[test]
fn http_pieces() {
    assert_eq!(parse_status("HTTP/1.1 503 Service Unavailable\r\n\r\n"), Some(503));
    assert_eq!(parse_status("SSH-2.0\r\n"), None);
    assert_eq!(dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), Chunked::Done(b"Wikipedia".to_vec()));
    assert_eq!(dechunk(b"4\r\nWi"), Chunked::More);
    assert_eq!(dechunk(b"zz\r\n"), Chunked::Bad);
    let h = Http {
        tls: false,
        path: "/h".into(),
        status: vec![],
        regex: None,
        digest: None,
        host: Some("www.example.org".into()),
    };
    assert!(request(&h, "10.0.0.1:8080".parse().unwrap()).starts_with("GET /h HTTP/1.1\r\nHost: www.example.org\r\n"));
    let h = Http { host: None, ..h };
    assert!(request(&h, "10.0.0.1:8080".parse().unwrap()).contains("\r\nHost: 10.0.0.1:8080\r\n"));
}

#[test]
fn dns_and_icmp_codecs() {
    let q = dns_query(0x1234, 6, "example.org.");
    assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
    assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x06\x00\x01");
    assert_eq!(dns_query(1, 6, ".")[12..], [0, 0, 6, 0, 1]);
    let mut r = q.clone();
    r[2] |= 0x80;
    assert_eq!(dns_verdict(0x1234, &r), Some(Ok("NOERROR, 0 answer(s)".into())));
    r[3] = 0x83;
    assert_eq!(dns_verdict(0x1234, &r), Some(Err("NXDOMAIN".into())));
    assert_eq!(dns_verdict(0x9999, &r), None, "not our query");
    let p = echo_request(false, 7, 9);
    assert_eq!(inet_checksum(&p), 0, "a packet with its checksum sums to zero");
    let mut reply = vec![0x45u8; 1];
    reply.extend_from_slice(&[0; 19]);
    reply.extend_from_slice(&p);
    reply[20] = 0;
    assert!(is_echo_reply(false, &reply, 7, 9));
    assert!(!is_echo_reply(false, &reply, 7, 10));
}
