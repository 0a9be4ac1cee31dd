//! The two XML documents the store reads: ListObjectsV2 pages (parsed by rusty_s3, which
//! already depends on an XML parser) and S3 error documents, of which only `Code` and
//! `Message` matter, read by a tiny scanner rather than a second XML dependency.

use rusty_s3::actions::ListObjectsV2;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    /// Set when the listing continues on another page.
    pub continuation: Option<String>,
}

pub fn parse_list_page(body: &[u8]) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|_| "listing is not UTF-8".to_string())?;
    let parsed =
        ListObjectsV2::parse_response(text).map_err(|e| format!("malformed listing: {e}"))?;
    Ok(ListPage {
        keys: parsed.contents.into_iter().map(|c| c.key).collect(),
        continuation: parsed.next_continuation_token,
    })
}

/// What an S3 error document says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDoc {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Reads `<Code>` and `<Message>` from an error body; anything unreadable leaves them empty,
/// since the status alone still says what happened.
pub fn parse_error(body: &[u8]) -> ErrorDoc {
    let Ok(text) = std::str::from_utf8(body) else {
        return ErrorDoc::default();
    };
    ErrorDoc {
        code: element(text, "Code"),
        message: element(text, "Message"),
    }
}

/// The unescaped text of the first `<name>…</name>`, if it holds no markup.
fn element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&close)?;
    let raw = &text[start..start + len];
    if raw.contains('<') {
        return None;
    }
    Some(unescape(raw.trim()))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page_from_seaweedfs() {
        // Captured from SeaweedFS 4.48.
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>testb</Name><Prefix>a/</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>a/b</Key><ETag>&#34;5d41402abc4b2a76b9719d911017c592&#34;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass><LastModified>2026-11-23T11:45:18Z</LastModified></Contents><KeyCount>1</KeyCount></ListBucketResult>"#;
        let page = parse_list_page(body).unwrap();
        assert_eq!(page.keys, ["a/b"]);
        assert_eq!(page.continuation, None);
    }

    #[test]
    fn truncated_list_page_with_url_encoded_keys() {
        let body = br#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType><NextContinuationToken>tok/en=</NextContinuationToken><Contents><Key>segments/a%20b</Key><Size>1</Size></Contents><Contents><Key>segments/c</Key><Size>2</Size></Contents></ListBucketResult>"#;
        let page = parse_list_page(body).unwrap();
        assert_eq!(page.keys, ["segments/a b", "segments/c"]);
        assert_eq!(page.continuation.as_deref(), Some("tok/en="));
        let empty = br#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        assert!(parse_list_page(empty).unwrap().keys.is_empty());
    }

    #[test]
    fn malformed_list_pages_are_errors() {
        assert!(parse_list_page(b"<ListBucketResult").is_err());
        assert!(parse_list_page(b"\xff\xfe").is_err());
        // Truncated without a token would end the listing early, silently.
        let no_token = br#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated></ListBucketResult>"#;
        assert!(parse_list_page(no_token).is_err());
    }

    #[test]
    fn error_documents() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Resource>/testb/nokey</Resource><RequestId>18EAAA</RequestId><Key>nokey</Key><BucketName>testb</BucketName></Error>"#;
        assert_eq!(
            parse_error(body),
            ErrorDoc {
                code: Some("NoSuchKey".into()),
                message: Some("The specified key does not exist.".into()),
            }
        );
        let slow = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate &amp; retry.</Message></Error>";
        let doc = parse_error(slow);
        assert_eq!(doc.code.as_deref(), Some("SlowDown"));
        assert_eq!(
            doc.message.as_deref(),
            Some("Please reduce your request rate & retry.")
        );
        assert_eq!(parse_error(b""), ErrorDoc::default());
        assert_eq!(
            parse_error(b"<html>502 Bad Gateway</html>"),
            ErrorDoc::default()
        );
        assert_eq!(parse_error(b"<Error><Code>Unclosed"), ErrorDoc::default());
        assert_eq!(parse_error(b"<Code><b>x</b></Code>").code, None);
    }
}
