//! The bucket URL of the S3 store: `s3://BUCKET?region=R&endpoint=URL&addressing=path|virtual`.
//!
//! Parsed once per shard at start-up, and checked once before any shard starts so that a bad
//! URL stops the agent with a clear message.

use rusty_s3::{Bucket, UrlStyle};
use url::Url;

/// How the bucket appears in request URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `http://endpoint/BUCKET/KEY`: what S3-compatible servers (SeaweedFS, MinIO) expect.
    Path,
    /// `http://BUCKET.endpoint/KEY`: what AWS recommends; needs DNS for the bucket's host name.
    Virtual,
}

/// Where the bucket lives and how to address it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub region: String,
    pub endpoint: Url,
    pub addressing: Addressing,
}

const DEFAULT_REGION: &str = "us-east-1";

impl S3Location {
    /// Parses a bucket URL. Without `endpoint` the bucket is on AWS in `region`, addressed
    /// virtual-hosted; with one, path-style unless `addressing` says otherwise.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let parsed = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if parsed.scheme() != "s3" {
            return Err("expected an s3:// URL".into());
        }
        let bucket = parsed.host_str().unwrap_or_default().to_string();
        check_bucket_name(&bucket)?;
        if !matches!(parsed.path(), "" | "/") {
            return Err(format!(
                "key prefixes are not supported: remove '{}' after the bucket name",
                parsed.path()
            ));
        }
        if parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.port().is_some() {
            return Err(
                "put the endpoint in ?endpoint=, and credentials in AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY"
                    .into(),
            );
        }
        let mut region = None;
        let mut endpoint = None;
        let mut addressing = None;
        for (name, value) in parsed.query_pairs() {
            let slot = match name.as_ref() {
                "region" => &mut region,
                "endpoint" => &mut endpoint,
                "addressing" => &mut addressing,
                other => {
                    return Err(format!(
                        "unknown parameter '{other}' (known: region, endpoint, addressing)"
                    ))
                }
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(format!("parameter '{name}' is given twice"));
            }
        }
        let region = region.unwrap_or_else(|| DEFAULT_REGION.to_string());
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!("region '{region}' is not a region name"));
        }
        let addressing = match addressing.as_deref() {
            None if endpoint.is_some() => Addressing::Path,
            None => Addressing::Virtual,
            Some("path") => Addressing::Path,
            Some("virtual") => Addressing::Virtual,
            Some(other) => {
                return Err(format!(
                    "addressing '{other}' is neither 'path' nor 'virtual'"
                ))
            }
        };
        let endpoint = match endpoint {
            Some(e) => Url::parse(&e).map_err(|err| format!("endpoint '{e}': {err}"))?,
            None => Url::parse(&format!("https://s3.{region}.amazonaws.com"))
                .map_err(|err| format!("region '{region}': {err}"))?,
        };
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(format!(
                "endpoint scheme '{}' is neither http nor https",
                endpoint.scheme()
            ));
        }
        if endpoint.host_str().is_none_or(str::is_empty)
            || !matches!(endpoint.path(), "" | "/")
            || endpoint.query().is_some()
            || !endpoint.username().is_empty()
        {
            return Err(format!(
                "endpoint '{endpoint}' must be scheme://host[:port], without path or query"
            ));
        }
        if addressing == Addressing::Virtual
            && matches!(
                endpoint.host(),
                Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_))
            )
        {
            return Err(format!(
                "virtual-hosted addressing needs a host name, and endpoint '{endpoint}' is an \
                 IP address; use addressing=path"
            ));
        }
        if addressing == Addressing::Virtual && bucket.contains('.') {
            // The bucket becomes a DNS label; dots would split it into several.
            return Err(format!(
                "bucket '{bucket}' has dots, which virtual-hosted addressing cannot carry; use \
                 addressing=path"
            ));
        }
        Ok(S3Location {
            bucket,
            region,
            endpoint,
            addressing,
        })
    }

    /// The signing handle for this bucket.
    pub fn bucket(&self) -> Result<Bucket, String> {
        let style = match self.addressing {
            Addressing::Path => UrlStyle::Path,
            Addressing::Virtual => UrlStyle::VirtualHost,
        };
        Bucket::new(
            self.endpoint.clone(),
            style,
            self.bucket.clone(),
            self.region.clone(),
        )
        .map_err(|e| format!("bucket '{}': {e}", self.bucket))
    }
}

/// S3's naming rules, so that a typo is reported at start-up rather than as a 400 on the
/// first PUT.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&name.len()) && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(format!(
            "bucket name '{name}' must be 3 to 63 lowercase letters, digits, '-' or '.', \
             starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoint_defaults_to_path_style() {
        let l = S3Location::parse("s3://my-bucket?region=us-east-1&endpoint=http://127.0.0.1:8333")
            .unwrap();
        assert_eq!(l.bucket, "my-bucket");
        assert_eq!(l.region, "us-east-1");
        assert_eq!(l.endpoint.as_str(), "http://127.0.0.1:8333/");
        assert_eq!(l.addressing, Addressing::Path);
        let b = l.bucket().unwrap();
        assert_eq!(
            b.object_url("segments/a.seg").as_str(),
            "http://127.0.0.1:8333/my-bucket/segments/a.seg"
        );
    }

    #[test]
    fn virtual_addressing_puts_the_bucket_in_the_host() {
        let l = S3Location::parse(
            "s3://logs?endpoint=http://s3.internal:9000&addressing=virtual&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(l.addressing, Addressing::Virtual);
        assert_eq!(l.region, "eu-west-1");
        let b = l.bucket().unwrap();
        assert_eq!(
            b.object_url("k/1").as_str(),
            "http://logs.s3.internal:9000/k/1"
        );
        let l = S3Location::parse("s3://logs?endpoint=http://s3.internal:9000&addressing=path")
            .unwrap();
        assert_eq!(
            l.bucket().unwrap().object_url("k/1").as_str(),
            "http://s3.internal:9000/logs/k/1"
        );
    }

    #[test]
    fn percent_encoded_endpoint_is_decoded() {
        let l = S3Location::parse("s3://abc?endpoint=http%3A%2F%2Flocalhost%3A9000").unwrap();
        assert_eq!(l.endpoint.as_str(), "http://localhost:9000/");
        assert_eq!(l.region, "us-east-1");
    }

    #[test]
    fn aws_without_endpoint_is_virtual_hosted_over_https() {
        let l = S3Location::parse("s3://abc?region=us-west-2").unwrap();
        assert_eq!(l.endpoint.as_str(), "https://s3.us-west-2.amazonaws.com/");
        assert_eq!(l.addressing, Addressing::Virtual);
        assert_eq!(
            l.bucket().unwrap().object_url("segments/x").as_str(),
            "https://abc.s3.us-west-2.amazonaws.com/segments/x"
        );
        let l = S3Location::parse("s3://abc.def").unwrap_err();
        assert!(l.contains("dots"), "{l}");
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        for (url, why) in [
            ("file:///x", "s3://"),
            ("s3://", "bucket name"),
            ("s3://ab?endpoint=http://h", "bucket name"),
            ("s3://Upper?endpoint=http://h", "bucket name"),
            ("s3://-abc?endpoint=http://h", "bucket name"),
            ("s3://abc/prefix?endpoint=http://h", "prefix"),
            (
                "s3://abc?endpoint=http://h&colour=blue",
                "unknown parameter",
            ),
            ("s3://abc?endpoint=http://h&endpoint=http://i", "twice"),
            ("s3://abc?endpoint=http://h&addressing=dns", "addressing"),
            ("s3://abc?endpoint=ftp://h", "neither http nor https"),
            ("s3://abc?endpoint=http://h/base", "without path"),
            ("s3://abc?endpoint=not a url", "endpoint"),
            (
                "s3://abc?endpoint=http://10.0.0.1&addressing=virtual",
                "IP address",
            ),
            ("s3://a.b.c?endpoint=http://h&addressing=virtual", "dots"),
            ("s3://abc?endpoint=http://h&region=us east", "region"),
            ("s3://key:secret@abc?endpoint=http://h", "credentials"),
        ] {
            let e = S3Location::parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
