//! The codec's tests: whole replies, replies split at every offset, garbage, proptest.

use super::*;

fn decode_all(bytes: &[u8]) -> Result<Vec<Response>, ProtoError> {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(response) = decoder.decode(&mut buf)? {
        out.push(response);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

fn body(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Every reply of protocol.txt, with what it decodes to.
fn every_reply() -> Vec<(&'static [u8], Response)> {
    vec![
        (b"INSERTED 17\r\n", Response::Inserted(17)),
        (b"BURIED 18\r\n", Response::BuriedId(18)),
        (b"BURIED\r\n", Response::Buried),
        (b"USING emails\r\n", Response::Using("emails".into())),
        (
            b"RESERVED 5 11\r\nhello world\r\n",
            Response::Reserved {
                id: 5,
                body: body("hello world"),
            },
        ),
        (
            b"RESERVED 6 0\r\n\r\n",
            Response::Reserved {
                id: 6,
                body: Bytes::new(),
            },
        ),
        (
            b"RESERVED 7 4\r\na\r\nb\r\n",
            Response::Reserved {
                id: 7,
                body: body("a\r\nb"),
            },
        ),
        (b"DEADLINE_SOON\r\n", Response::DeadlineSoon),
        (b"TIMED_OUT\r\n", Response::TimedOut),
        (b"DELETED\r\n", Response::Deleted),
        (b"RELEASED\r\n", Response::Released),
        (b"TOUCHED\r\n", Response::Touched),
        (b"WATCHING 2\r\n", Response::Watching(2)),
        (b"NOT_IGNORED\r\n", Response::NotIgnored),
        (
            b"FOUND 9 3\r\nabc\r\n",
            Response::Found {
                id: 9,
                body: body("abc"),
            },
        ),
        (b"KICKED 12\r\n", Response::KickedCount(12)),
        (b"KICKED\r\n", Response::Kicked),
        (
            b"OK 14\r\n---\n- default\n\r\n",
            Response::Ok(body("---\n- default\n")),
        ),
        (b"PAUSED\r\n", Response::Paused),
        (b"NOT_FOUND\r\n", Response::NotFound),
        (b"OUT_OF_MEMORY\r\n", Response::OutOfMemory),
        (b"INTERNAL_ERROR\r\n", Response::InternalError),
        (b"BAD_FORMAT\r\n", Response::BadFormat),
        (b"UNKNOWN_COMMAND\r\n", Response::UnknownCommand),
        (b"EXPECTED_CRLF\r\n", Response::ExpectedCrlf),
        (b"JOB_TOO_BIG\r\n", Response::JobTooBig),
        (b"DRAINING\r\n", Response::Draining),
        (
            b"INSERTED 18446744073709551615\r\n",
            Response::Inserted(u64::MAX),
        ),
    ]
}

#[test]
fn decodes_every_reply_whole() {
    for (bytes, expected) in every_reply() {
        assert_eq!(
            decode_all(bytes).unwrap(),
            vec![expected],
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn decodes_every_reply_split_at_every_offset() {
    for (bytes, expected) in every_reply() {
        for split in 0..bytes.len() {
            let mut decoder = Decoder::default();
            let mut buf = BytesMut::from(&bytes[..split]);
            assert_eq!(
                decoder.decode(&mut buf).unwrap(),
                None,
                "split {split} of {bytes:?}"
            );
            assert_eq!(
                buf.len(),
                split,
                "nothing consumed before the frame is whole"
            );
            buf.extend_from_slice(&bytes[split..]);
            assert_eq!(decoder.decode(&mut buf).unwrap(), Some(expected.clone()));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn decodes_a_pipelined_stream_fed_byte_by_byte() {
    let all: Vec<u8> = every_reply().iter().flat_map(|(b, _)| b.to_vec()).collect();
    let expected: Vec<Response> = every_reply().into_iter().map(|(_, r)| r).collect();
    assert_eq!(decode_all(&all).unwrap(), expected);
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for byte in all {
        buf.extend_from_slice(&[byte]);
        while let Some(response) = decoder.decode(&mut buf).unwrap() {
            out.push(response);
        }
    }
    assert_eq!(out, expected);
}

#[test]
fn garbage_is_an_error() {
    let cases: &[&[u8]] = &[
        b"HELLO\r\n",
        b"INSERTED\r\n",
        b"INSERTED x\r\n",
        b"INSERTED -1\r\n",
        b"INSERTED +1\r\n",
        b"INSERTED 1 2\r\n",
        b"INSERTED 18446744073709551616\r\n",
        b"inserted 1\r\n",
        b"TIMED_OUT \r\n",
        b"\r\n",
        b"RESERVED 1\r\n",
        b"RESERVED 1 x\r\n",
        b"OK\r\n",
        b"USING bad name\r\n",
        b"USING -x\r\n",
        b"\xff\xfe\r\n",
        b"WATCHING\r\n",
    ];
    for bytes in cases {
        let mut buf = BytesMut::from(*bytes);
        assert!(
            matches!(
                Decoder::default().decode(&mut buf),
                Err(ProtoError::Malformed(_))
            ),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let mut buf = BytesMut::from(&b"FOUND 1 3\r\nabcXY"[..]);
    assert_eq!(
        Decoder::default().decode(&mut buf),
        Err(ProtoError::MissingCrlf)
    );
}

#[test]
fn lengths_are_bounded() {
    let mut decoder = Decoder::new(16, 8);
    let mut buf = BytesMut::from(&b"INSERTED 123456789"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ProtoError::LineTooLong { max: 16 })
    );
    let mut buf = BytesMut::from(&b"INSERTED 12"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let mut buf = BytesMut::from(&b"OK 9\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ProtoError::BodyTooLong { len: 9, max: 8 })
    );
    let mut buf2 = BytesMut::from(&b"OK 99999999999999999999\r\n"[..]);
    assert!(matches!(
        Decoder::new(64, 8).decode(&mut buf2),
        Err(ProtoError::Malformed(_))
    ));
    let mut huge = BytesMut::from(&b"OK 18446744073709551615\r\n"[..]);
    assert!(matches!(
        Decoder::new(64, 8).decode(&mut huge),
        Err(ProtoError::BodyTooLong { .. })
    ));
}

#[test]
fn a_server_error_is_a_value_and_decoding_goes_on() {
    let replies = decode_all(b"JOB_TOO_BIG\r\nINSERTED 3\r\nNOT_FOUND\r\nDELETED\r\n").unwrap();
    assert_eq!(
        replies,
        vec![
            Response::JobTooBig,
            Response::Inserted(3),
            Response::NotFound,
            Response::Deleted
        ]
    );
}

#[test]
fn decode_eof_mid_frame_needs_more() {
    let mut buf = BytesMut::from(&b"RESERVED 1 10\r\nabc"[..]);
    assert_eq!(Decoder::default().decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 18);
}

#[test]
fn encodes_every_command() {
    let cases: Vec<(Command<'_>, &[u8])> = vec![
        (
            Command::Put {
                priority: 1,
                delay: 2,
                ttr: 3,
                body: b"hi",
            },
            b"put 1 2 3 2\r\nhi\r\n",
        ),
        (Command::Use("a"), b"use a\r\n"),
        (Command::Reserve, b"reserve\r\n"),
        (
            Command::ReserveWithTimeout(5),
            b"reserve-with-timeout 5\r\n",
        ),
        (Command::ReserveJob(7), b"reserve-job 7\r\n"),
        (Command::Delete(7), b"delete 7\r\n"),
        (
            Command::Release {
                id: 7,
                priority: 8,
                delay: 9,
            },
            b"release 7 8 9\r\n",
        ),
        (Command::Bury { id: 7, priority: 8 }, b"bury 7 8\r\n"),
        (Command::Touch(7), b"touch 7\r\n"),
        (Command::Watch("b"), b"watch b\r\n"),
        (Command::Ignore("b"), b"ignore b\r\n"),
        (Command::Peek(7), b"peek 7\r\n"),
        (Command::PeekReady, b"peek-ready\r\n"),
        (Command::PeekDelayed, b"peek-delayed\r\n"),
        (Command::PeekBuried, b"peek-buried\r\n"),
        (Command::Kick(10), b"kick 10\r\n"),
        (Command::KickJob(7), b"kick-job 7\r\n"),
        (Command::Stats, b"stats\r\n"),
        (Command::StatsJob(7), b"stats-job 7\r\n"),
        (Command::StatsTube("c"), b"stats-tube c\r\n"),
        (Command::ListTubes, b"list-tubes\r\n"),
        (Command::ListTubeUsed, b"list-tube-used\r\n"),
        (Command::ListTubesWatched, b"list-tubes-watched\r\n"),
        (
            Command::PauseTube {
                tube: "c",
                delay: 4,
            },
            b"pause-tube c 4\r\n",
        ),
        (Command::Quit, b"quit\r\n"),
    ];
    for (command, expected) in cases {
        let mut out = Vec::new();
        command.encode(&mut out);
        assert_eq!(out, expected, "{command:?}");
    }
}

#[test]
fn tube_names() {
    assert!(check_tube_name("emails").is_ok());
    assert!(check_tube_name("a-b+c/d;e.f$g_h(i)").is_ok());
    assert!(check_tube_name(&"x".repeat(200)).is_ok());
    assert!(check_tube_name(&"x".repeat(201)).is_err());
    assert!(check_tube_name("").is_err());
    assert!(check_tube_name("-a").is_err());
    assert!(check_tube_name("a b").is_err());
    assert!(check_tube_name("é").is_err());
}

#[test]
fn yaml() {
    let map = parse_yaml_map(b"---\nid: 5\ntube: \"emails\"\nstate: ready\n").unwrap();
    assert_eq!(map["id"], "5");
    assert_eq!(map["tube"], "emails");
    assert_eq!(map["state"], "ready");
    let list = parse_yaml_list(b"---\n- default\n- emails\n").unwrap();
    assert_eq!(list, vec!["default", "emails"]);
    assert_eq!(parse_yaml_list(b"---\n").unwrap(), Vec::<String>::new());
    assert!(parse_yaml_map(b"id: 5\n").is_err());
    assert!(parse_yaml_map(b"---\nnonsense\n").is_err());
    assert!(parse_yaml_list(b"---\nx: 1\n").is_err());
    assert!(parse_yaml_list(b"\xff").is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let mut decoder = Decoder::new(64, 128);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        let _ = parse_yaml_map(&bytes);
        let _ = parse_yaml_list(&bytes);
    }

    #[test]
    fn reply_like_bytes_never_panic(
        word in proptest::sample::select(vec!["RESERVED", "FOUND", "OK", "INSERTED", "KICKED", "USING", "BURIED"]),
        args in proptest::collection::vec("[0-9a-z ]{0,24}", 0..3),
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
    ) {
        let mut bytes = word.as_bytes().to_vec();
        for arg in args {
            bytes.push(b' ');
            bytes.extend_from_slice(arg.as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&tail);
        let mut decoder = Decoder::new(64, 32);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}
