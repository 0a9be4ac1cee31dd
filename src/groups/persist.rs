//! The stored form of a group: what survives an agent restart (or lets another agent take the
//! group over). Only a Stable group's members and assignments are kept; a rebalance that was in
//! progress is simply redone. A small versioned binary encoding, checked on decode.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::group::{Group, GroupState};

const FORMAT_VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredState {
    pub group_id: String,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<StoredMember>,
}

impl StoredState {
    pub fn of(group: &Group) -> StoredState {
        let stable = group.state == GroupState::Stable;
        StoredState {
            group_id: group.id.clone(),
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol: stable.then(|| group.protocol.clone()).flatten(),
            leader: stable.then(|| group.leader.clone()).flatten(),
            members: if stable {
                group
                    .members
                    .iter()
                    .map(|m| StoredMember {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        session_timeout: m.session_timeout,
                        rebalance_timeout: m.rebalance_timeout,
                        protocols: m.protocols.clone(),
                        assignment: m.assignment.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn put_opt(out: &mut BytesMut, s: &Option<String>) {
    match s {
        None => out.put_u8(0),
        Some(s) => {
            out.put_u8(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

pub fn encode(state: &StoredState) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(FORMAT_VERSION);
    put_bytes(&mut out, state.group_id.as_bytes());
    out.put_i32(state.generation);
    put_opt(&mut out, &state.protocol_type);
    put_opt(&mut out, &state.protocol);
    put_opt(&mut out, &state.leader);
    out.put_u32(state.members.len() as u32);
    for m in &state.members {
        put_bytes(&mut out, m.member_id.as_bytes());
        put_opt(&mut out, &m.instance_id);
        put_bytes(&mut out, m.client_id.as_bytes());
        put_bytes(&mut out, m.client_host.as_bytes());
        out.put_u64(m.session_timeout.as_millis() as u64);
        out.put_u64(m.rebalance_timeout.as_millis() as u64);
        out.put_u32(m.protocols.len() as u32);
        for (name, meta) in &m.protocols {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, meta);
        }
        put_bytes(&mut out, &m.assignment);
    }
    out.to_vec()
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Option<()> {
        (self.0.remaining() >= n).then_some(())
    }
    fn u8(&mut self) -> Option<u8> {
        self.need(1)?;
        Some(self.0.get_u8())
    }
    fn u32(&mut self) -> Option<u32> {
        self.need(4)?;
        Some(self.0.get_u32())
    }
    fn i32(&mut self) -> Option<i32> {
        self.need(4)?;
        Some(self.0.get_i32())
    }
    fn u64(&mut self) -> Option<u64> {
        self.need(8)?;
        Some(self.0.get_u64())
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        self.need(n)?;
        Some(self.0.split_to(n))
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }
}

/// Decodes a stored group; `None` if the bytes are not a valid encoding.
pub fn decode(bytes: &[u8]) -> Option<StoredState> {
    let mut r = Reader(Bytes::copy_from_slice(bytes));
    if r.u8()? != FORMAT_VERSION {
        return None;
    }
    let group_id = r.string()?;
    let generation = r.i32()?;
    let protocol_type = r.opt()?;
    let protocol = r.opt()?;
    let leader = r.opt()?;
    let count = r.u32()? as usize;
    // Each member takes well over 8 bytes: a count beyond that cannot be real.
    r.need(count.checked_mul(8)?)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.string()?;
        let instance_id = r.opt()?;
        let client_id = r.string()?;
        let client_host = r.string()?;
        let session_timeout = Duration::from_millis(r.u64()?);
        let rebalance_timeout = Duration::from_millis(r.u64()?);
        let n = r.u32()? as usize;
        r.need(n.checked_mul(8)?)?;
        let mut protocols = Vec::with_capacity(n);
        for _ in 0..n {
            protocols.push((r.string()?, r.bytes()?));
        }
        let assignment = r.bytes()?;
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            session_timeout,
            rebalance_timeout,
            protocols,
            assignment,
        });
    }
    Some(StoredState {
        group_id,
        generation,
        protocol_type,
        protocol,
        leader,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let s = StoredState {
            group_id: "g".into(),
            generation: 7,
            protocol_type: Some("consumer".into()),
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            members: vec![StoredMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout: Duration::from_secs(10),
                rebalance_timeout: Duration::from_secs(30),
                protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = encode(&s);
        assert_eq!(decode(&bytes), Some(s));
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), None);
        }
        assert_eq!(decode(&[9, 9, 9]), None);
    }
}
