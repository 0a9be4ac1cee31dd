//! Routing hints a client puts in its `client.id`: `key=value` pairs separated by `,` or `;`,
//! among any other text. Service discovery reads the client's zone (`ws_az=`,
//! `warpstream_az=` or `zone=`), a per-client host override (`ws_host_override=` or
//! `host_override=`) and forced interzone balancing (`warpstream_interzone_lb=true`). Unknown
//! or malformed pairs are ignored. Parsing borrows from the client id and never allocates: it
//! runs on every Metadata and FindCoordinator request.

/// What a client id asks of routing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientHints<'a> {
    pub zone: Option<&'a str>,
    pub host_override: Option<&'a str>,
    pub interzone_lb: bool,
}

/// Reads the hints in `client_id`. When a key appears twice, the first value wins.
pub fn parse(client_id: &str) -> ClientHints<'_> {
    let mut hints = ClientHints::default();
    for pair in client_id.split([',', ';']) {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            continue;
        }
        match key {
            "ws_az" | "warpstream_az" | "zone" => {
                hints.zone.get_or_insert(value);
            }
            "ws_host_override" | "host_override" => {
                hints.host_override.get_or_insert(value);
            }
            "warpstream_interzone_lb" => {
                hints.interzone_lb |= value.eq_ignore_ascii_case("true");
            }
            _ => {}
        }
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zone_override_and_balancing() {
        let h = parse(
            "my-app,ws_az=us-east-1a;ws_host_override=lb.example.com,warpstream_interzone_lb=true",
        );
        assert_eq!(
            h,
            ClientHints {
                zone: Some("us-east-1a"),
                host_override: Some("lb.example.com"),
                interzone_lb: true,
            }
        );
        assert_eq!(parse("warpstream_az=b").zone, Some("b"));
        assert_eq!(parse("zone=c;host_override=h").host_override, Some("h"));
    }

    #[test]
    fn ignores_unknown_and_malformed_pairs() {
        assert_eq!(parse(""), ClientHints::default());
        assert_eq!(parse("rdkafka"), ClientHints::default());
        assert_eq!(parse("ws_az=;zone;=x;foo=bar,,"), ClientHints::default());
        assert_eq!(parse("ws_az = a , zone=b").zone, Some("a"));
        assert!(!parse("warpstream_interzone_lb=yes").interzone_lb);
        assert_eq!(parse("ws_az=a=b").zone, Some("a=b"));
    }
}
