//! Token verification cost per call (target < 5 µs), with a bare HMAC-SHA256
//! of the same token as the baseline measured in the same run.
//! Run: cargo bench -p medkit --bench verify_token

use criterion::{Criterion, criterion_group, criterion_main};
use medkit::auth::{self, Role};
use medkit::env::Env;
use medkit::ids::ClientId;
use medkit::registry::Registry;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let client = ClientId::parse("benchclient").unwrap();
    let mut one = Registry::default();
    one.add(client.clone(), b"current secret");
    let mut rotating = Registry::default();
    rotating.add(client.clone(), b"next secret");
    rotating.add(client.clone(), b"current secret");
    let claims = auth::claims_for(Role::Viewer, "12345", Some("67890"), 3600);
    let token = auth::mint(one.get("benchclient").unwrap(), claims);
    let header = format!("benchclient {token}");

    c.bench_function("verify (1 secret)", |b| {
        b.iter(|| auth::verify(black_box(&one), Env::Production, Some(black_box(&header))).unwrap())
    });
    c.bench_function("verify (2 secrets, matches the 2nd)", |b| {
        b.iter(|| {
            auth::verify(
                black_box(&rotating),
                Env::Production,
                Some(black_box(&header)),
            )
            .unwrap()
        })
    });
    // Baseline: the signature check alone (HS256 over the same signing input).
    let key = jsonwebtoken::DecodingKey::from_secret(b"current secret");
    let (message, signature) = token.rsplit_once('.').unwrap();
    c.bench_function("baseline: HS256 signature check only", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                black_box(signature),
                black_box(message.as_bytes()),
                &key,
                jsonwebtoken::Algorithm::HS256,
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
