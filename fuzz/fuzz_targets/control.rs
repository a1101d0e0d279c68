//! Control socket: one JSON line from any local client that can connect
//! (`parse_request`, run by the daemon before any credential matters for
//! the content), and the daemon's reply as the CLI decodes it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rcbsd_failover::control::protocol::Response;
use rcbsd_failover::control::server::parse_request;

fuzz_target!(|line: &[u8]| {
    match parse_request(line) {
        Ok(request) => {
            // The protocol is one JSON object per line (docs/status.md).
            assert!(
                matches!(
                    serde_json::from_slice(line),
                    Ok(serde_json::Value::Object(_))
                ),
                "a line that is not a JSON object was accepted as {request:?}"
            );
            // What was accepted is what the CLI would have sent.
            let canonical = serde_json::to_vec(&request).expect("a request serializes");
            assert_eq!(parse_request(&canonical).ok(), Some(request));
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("malformed request: "), "{message}");
        }
    }
    if let Ok(response) = serde_json::from_slice::<Response>(line) {
        let encoded = serde_json::to_vec(&response).expect("a response serializes");
        let decoded: Response = serde_json::from_slice(&encoded).expect("our own response decodes");
        assert_eq!(decoded, response);
    }
});
