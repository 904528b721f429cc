//! Frame and request decoding as the daemon does it, on arbitrary bytes: the length check,
//! the handshake, the request id, the request, and the validation of decoded tasks. Nothing
//! here may panic or allocate beyond the frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vapora::protocol::codec::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use vapora::protocol::handshake::{Hello, Welcome};
use vapora::protocol::{Request, RequestFrame, ResponseFrame};

fuzz_target!(|data: &[u8]| {
    // The stream as the daemon's connection splits it into frames.
    let mut rest = data;
    while let Ok(Some(len)) = codec::complete_frame(rest, DEFAULT_MAX_FRAME) {
        let body = &rest[HEADER_LEN..HEADER_LEN + len];
        let _ = codec::decode::<Hello>(body);
        let _ = codec::decode::<Welcome>(body);
        let _ = codec::decode::<ResponseFrame>(body);
        if let Ok((_id, used)) = codec::decode_prefix::<u64>(body)
            && let Ok(request) = codec::decode::<Request>(&body[used..])
            && let Request::AddTasks { tasks } = request
        {
            for mut task in tasks {
                let _ = task.validate(&vapora::protocol::limits::Limits::default());
            }
        }
        let _ = codec::decode::<RequestFrame>(body);
        rest = &rest[HEADER_LEN + len..];
    }
    // A frame body given whole, without a length prefix.
    let _ = codec::decode::<RequestFrame>(data);
});
