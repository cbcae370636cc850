//! Publishing: every way a package is refused, with nothing half-stored.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_checks_everything_and_stores_nothing_it_refuses() {
    let h = hub(
        ApiConfig::default(),
        MarketConfig {
            max_package_bytes: 2 * 1024 * 1024,
            ..Default::default()
        },
    )
    .await;
    let (manifest, wasm) = built("examples/tier-tagger");
    let (registry_manifest, registry_wasm) = built("registry");
    let key = SecretKey::generate();
    let publisher = h.token("pub@example.com").await;
    let rival = h.token("rival@example.com").await;
    let plain = h.token("plain@example.com").await;
    let good = pack(&manifest, &wasm, &key).to_bytes();

    // Only publishers register keys and publish; API keys never do.
    let r = h.register(&plain, &key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(message(&r).contains("publisher right"), "{}", r.body);
    let r = h.publish(&h.admin_key, good.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = h.publish(&plain, good.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // An unknown key.
    let r = h.publish(&publisher, good.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("not registered"), "{}", r.body);

    let r = h.register(&publisher, &key).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["key_id"], key.public().key_id());
    let r = h.register(&publisher, &key).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = h
        .call(
            Method::POST,
            "/v1/marketplace/keys",
            &publisher,
            Some(json!({"public_key": "rsa:xyz"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["parameter"], "public_key");

    // Every refusal names its reason and stores nothing.
    let tampered_component = {
        let mut p = pack(&manifest, &wasm, &key);
        p.component[100] ^= 0xff;
        p.to_bytes()
    };
    let tampered_manifest = {
        let mut p = pack(&manifest, &wasm, &key);
        p.manifest = p.manifest.replace("price tier", "prize tier");
        p.to_bytes()
    };
    let forged = {
        // Contents and digest changed together: only the signature can tell.
        let mut p = pack(&manifest, &wasm, &key);
        p.readme.push_str("\nInstall me!\n");
        p.signature.as_mut().unwrap().digest = p.digest();
        p.to_bytes()
    };
    let unsigned = Package::new(manifest.clone(), wasm.clone(), readme("x"), None).to_bytes();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let world_mismatch = manifest
        .replace("kind = \"enricher\"", "kind = \"detector\"")
        .replace("hub:plugin/enricher@0.2.0", "hub:plugin/detector@0.1.0");
    let undeclared = registry_manifest
        .replace("kv = true", "kv = false")
        .replace("http = [\"*\"]", "http = []");
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "tampered component",
            tampered_component,
            StatusCode::BAD_REQUEST,
            "do not match its signature",
        ),
        (
            "tampered manifest",
            tampered_manifest,
            StatusCode::BAD_REQUEST,
            "do not match its signature",
        ),
        (
            "forged digest",
            forged,
            StatusCode::BAD_REQUEST,
            "does not verify",
        ),
        ("unsigned", unsigned, StatusCode::BAD_REQUEST, "not signed"),
        (
            "not a package",
            b"PK\x03\x04 a zip".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a .hubpkg",
        ),
        (
            "too large",
            vec![7u8; 3 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit of 2097152 bytes",
        ),
        (
            "unknown manifest field",
            pack(
                &manifest.replace("[limits]", "[limits]\nspeed = 3"),
                &wasm,
                &key,
            )
            .to_bytes(),
            StatusCode::BAD_REQUEST,
            "unknown field `speed`",
        ),
        (
            "a deadline over the operator's maximum",
            pack(
                &manifest.replace("deadline-ms = 50", "deadline-ms = 30000"),
                &wasm,
                &key,
            )
            .to_bytes(),
            StatusCode::BAD_REQUEST,
            "limits.deadline-ms asks for 30000 ms; this hub allows at most 2000 ms (the operator's --plugin-max-deadline)",
        ),
        (
            "bad version syntax",
            pack(&with_version(&manifest, "1.0"), &wasm, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "plugin.toml: version",
        ),
        (
            "core module",
            pack(&manifest, &core_module, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "component",
        ),
        (
            "missing export",
            pack(&world_mismatch, &wasm, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "detect",
        ),
        (
            "undeclared import",
            pack(&undeclared, &registry_wasm, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "kv",
        ),
        (
            "example refused by configure",
            pack(
                &manifest.replace(
                    "additionalProperties = false\n",
                    "additionalProperties = false\nexamples = [{ premium = [7] }]\n",
                ),
                &wasm,
                &key,
            )
            .to_bytes(),
            StatusCode::BAD_REQUEST,
            "example configuration",
        ),
    ];
    for (what, bytes, status, needle) in cases {
        let r = h.publish(&publisher, bytes).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(message(&r).contains(needle), "{what}: {}", r.body);
        assert_eq!(h.catalog().await.0, vec![], "{what} left something behind");
    }
    let tier_component = hub_marketplace::plugin_digest(&manifest, &wasm);
    assert_eq!(
        h.storage
            .plugins()
            .plugin_component(&tier_component)
            .await
            .unwrap(),
        None
    );

    // A good package.
    let r = h.publish(&publisher, good.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["name"].as_str(), r.body["version"].as_str()),
        (Some("tier-tagger"), Some("0.1.0"))
    );
    assert_eq!(r.body["publisher"], "pub@example.com");
    assert_eq!(r.body["plugin_digest"], tier_component);
    assert!(
        r.body["readme_html"]
            .as_str()
            .unwrap()
            .contains("&lt;script&gt;"),
        "{}",
        r.body
    );
    // Versions never change.
    let r = h.publish(&publisher, good.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(message(&r).contains("already published"), "{}", r.body);
    // The name belongs to its publisher.
    let rival_key = SecretKey::generate();
    assert_eq!(
        h.register(&rival, &rival_key).await.status,
        StatusCode::CREATED
    );
    let r = h
        .publish(
            &rival,
            pack(&with_version(&manifest, "9.0.0"), &wasm, &rival_key).to_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        message(&r).contains("belongs to publisher pub@example.com"),
        "{}",
        r.body
    );
    // A key of another publisher.
    let r = h
        .publish(
            &rival,
            pack(&with_version(&manifest, "9.0.0"), &wasm, &key).to_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // A revoked key signs nothing new.
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/marketplace/keys/{}", rival_key.public().key_id()),
            &rival,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .publish(
            &rival,
            pack(
                &manifest.replace("tier-tagger", "rival-tagger"),
                &wasm,
                &rival_key,
            )
            .to_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("revoked"), "{}", r.body);
    assert_eq!(
        h.catalog().await.0,
        vec![("tier-tagger".to_string(), "0.1.0".to_string())]
    );

    // The audit log has the publication and the refusals.
    let audit = h
        .storage
        .audit()
        .list_audit(None, &Default::default(), 100)
        .await
        .unwrap();
    let publishes: Vec<_> = audit
        .iter()
        .filter(|a| a.entry.action == "marketplace.publish")
        .collect();
    assert!(publishes.iter().any(|a| a.entry.outcome == "ok"
        && a.entry.target.as_deref() == Some("package:tier-tagger@0.1.0")));
    assert!(
        publishes
            .iter()
            .filter(|a| a.entry.outcome == "denied")
            .count()
            >= 12
    );
}
