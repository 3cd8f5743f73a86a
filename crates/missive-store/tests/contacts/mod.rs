//! Contacts, invitations, blocklists, roster versions (`store::contacts`) and user
//! attributes (`store::attributes`), for every backend: instantiated by `conformance!` in
//! `conformance.rs`.

use missive_core::store::{AttributeWrite, Attributes};

use super::support::TestStore;
use super::{app, user};

fn names(list: &[missive_core::store::Contact]) -> Vec<&str> {
    list.iter().map(|c| c.peer.as_str()).collect()
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub async fn contacts_are_mutual_paged_and_versioned(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    for n in ["amy", "bob", "cal", "dan"] {
        user(s, a, n).await;
    }
    assert_eq!(s.roster_version(a, "amy").await.unwrap(), 0);
    assert!(s.add_contact(a, "amy", "bob", 1_000).await.unwrap());
    assert!(!s.add_contact(a, "bob", "amy", 2_000).await.unwrap(), "already contacts, either way round");
    assert!(s.add_contact(a, "amy", "dan", 3_000).await.unwrap());
    assert!(s.add_contact(a, "amy", "cal", 3_000).await.unwrap());
    assert_eq!(names(&s.contacts(a, "amy", None, 10).await.unwrap()), ["bob", "cal", "dan"]);
    assert_eq!(names(&s.contacts(a, "bob", None, 10).await.unwrap()), ["amy"]);
    assert_eq!(names(&s.contacts(a, "amy", None, 2).await.unwrap()), ["bob", "cal"]);
    assert_eq!(names(&s.contacts(a, "amy", Some("cal"), 2).await.unwrap()), ["dan"]);
    assert_eq!(s.contact_count(a, "amy").await.unwrap(), 3);

    // Versions move on every change, past the change's time, and only for the users touched.
    let v_amy = s.roster_version(a, "amy").await.unwrap();
    let v_bob = s.roster_version(a, "bob").await.unwrap();
    assert!(v_amy >= 3_000 && v_bob >= 1_000, "{v_amy} {v_bob}");
    assert!(s.set_remark(a, "amy", "bob", "Bobby", 3_000).await.unwrap());
    assert!(!s.set_remark(a, "bob", "cal", "x", 3_000).await.unwrap(), "not a contact");
    assert!(s.roster_version(a, "amy").await.unwrap() > v_amy);
    assert_eq!(s.roster_version(a, "bob").await.unwrap(), v_bob, "a remark is the owner's alone");
    let bob = &s.contacts(a, "amy", None, 1).await.unwrap()[0];
    assert_eq!((bob.remark.as_deref(), bob.created), (Some("Bobby"), 1_000));
    assert_eq!(s.contacts(a, "bob", None, 1).await.unwrap()[0].remark, None);

    let v_amy = s.roster_version(a, "amy").await.unwrap();
    assert!(s.remove_contact(a, "bob", "amy", 4_000).await.unwrap());
    assert!(!s.remove_contact(a, "amy", "bob", 4_000).await.unwrap());
    assert_eq!(names(&s.contacts(a, "amy", None, 10).await.unwrap()), ["cal", "dan"]);
    assert!(s.contacts(a, "bob", None, 10).await.unwrap().is_empty());
    assert!(s.roster_version(a, "amy").await.unwrap() > v_amy);
    assert!(s.roster_version(a, "bob").await.unwrap() > v_bob);

    // Another app's users are another world.
    let other = app(s).await;
    assert!(s.contacts(other, "amy", None, 10).await.unwrap().is_empty());
}

pub async fn invitations_are_taken_once_and_cleared_by_adding(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    s.add_request(a, "amy", "bob", "hi", 1).await.unwrap();
    s.add_request(a, "amy", "bob", "hello again", 2).await.unwrap();
    assert_eq!(s.take_request(a, "bob", "amy").await.unwrap(), None, "direction matters");
    assert_eq!(s.take_request(a, "amy", "bob").await.unwrap().as_deref(), Some("hello again"));
    assert_eq!(s.take_request(a, "amy", "bob").await.unwrap(), None);

    s.add_request(a, "bob", "amy", "", 3).await.unwrap();
    assert!(s.add_contact(a, "amy", "bob", 4).await.unwrap());
    assert_eq!(s.take_request(a, "bob", "amy").await.unwrap(), None, "adding clears the invitation");
}

pub async fn blocklists_are_one_way_and_independent_of_contacts(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    assert!(s.add_contact(a, "amy", "bob", 1).await.unwrap());
    s.block(a, "amy", &["bob".into(), "cal".into()], 2).await.unwrap();
    s.block(a, "amy", &["bob".into()], 3).await.unwrap();
    assert!(s.is_blocked(a, "amy", "bob").await.unwrap());
    assert!(!s.is_blocked(a, "bob", "amy").await.unwrap(), "one way");
    assert_eq!(s.blocklist(a, "amy", None, 10).await.unwrap(), ["bob", "cal"]);
    assert_eq!(s.blocklist(a, "amy", Some("bob"), 10).await.unwrap(), ["cal"]);
    assert_eq!(s.blocked_count(a, "amy").await.unwrap(), 2);
    assert_eq!(names(&s.contacts(a, "amy", None, 10).await.unwrap()), ["bob"], "a blocked contact stays");
    assert_eq!(s.unblock(a, "amy", &["bob".into(), "zed".into()]).await.unwrap(), 1);
    assert!(!s.is_blocked(a, "amy", "bob").await.unwrap());
    assert_eq!(s.blocklist(a, "amy", None, 10).await.unwrap(), ["cal"]);
}

pub async fn deleting_a_user_removes_their_relations(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    for n in ["amy", "bob", "cal"] {
        user(s, a, n).await;
    }
    s.add_contact(a, "amy", "bob", 1).await.unwrap();
    s.add_contact(a, "bob", "cal", 1).await.unwrap();
    s.add_request(a, "bob", "cal", "", 1).await.unwrap();
    s.block(a, "amy", &["bob".into()], 1).await.unwrap();
    s.block(a, "bob", &["cal".into()], 1).await.unwrap();
    s.merge_attributes(a, "bob", &attrs(&[("nickname", "B")]), 2048, 1).await.unwrap();
    let v_amy = s.roster_version(a, "amy").await.unwrap();

    s.delete_user(a, "bob").await.unwrap().expect("deleted");
    assert!(s.contacts(a, "amy", None, 10).await.unwrap().is_empty());
    assert!(s.contacts(a, "cal", None, 10).await.unwrap().is_empty());
    assert!(s.roster_version(a, "amy").await.unwrap() > v_amy, "amy's roster changed");
    assert!(!s.is_blocked(a, "amy", "bob").await.unwrap());
    assert_eq!(s.blocked_count(a, "bob").await.unwrap(), 0);
    assert_eq!(s.take_request(a, "bob", "cal").await.unwrap(), None);
    assert!(s.attributes(a, "bob").await.unwrap().is_empty());

    // A new "bob" starts with nothing, at a version no client can have cached.
    user(s, a, "bob").await;
    assert!(s.contacts(a, "bob", None, 10).await.unwrap().is_empty());
    s.add_contact(a, "bob", "cal", 2).await.unwrap();
    assert!(s.roster_version(a, "bob").await.unwrap() >= 2);
}

pub async fn attributes_merge_under_the_limit(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    assert!(s.attributes(a, "amy").await.unwrap().is_empty());
    let w = s.merge_attributes(a, "amy", &attrs(&[("nickname", "Amy"), ("sign", "hi")]), 2048, 1).await.unwrap();
    assert_eq!(w, AttributeWrite::Stored(attrs(&[("nickname", "Amy"), ("sign", "hi")])));
    let w = s.merge_attributes(a, "amy", &attrs(&[("nickname", "Amélie")]), 2048, 2).await.unwrap();
    assert_eq!(w, AttributeWrite::Stored(attrs(&[("nickname", "Amélie"), ("sign", "hi")])));

    // Over the limit: refused whole, nothing changes.
    let big = attrs(&[("ext", &"x".repeat(2040))]);
    assert_eq!(
        s.merge_attributes(a, "amy", &big, 2048, 3).await.unwrap(),
        AttributeWrite::TooLarge { size: 2040 + 3 + 8 + 7 + 4 + 2 }
    );
    assert_eq!(s.attributes(a, "amy").await.unwrap(), attrs(&[("nickname", "Amélie"), ("sign", "hi")]));

    s.merge_attributes(a, "bob", &attrs(&[("avatarurl", "http://x/b.png")]), 2048, 4).await.unwrap();
    let many = s.attributes_of(a, &["amy".into(), "bob".into(), "nobody".into()]).await.unwrap();
    assert_eq!(many.keys().collect::<Vec<_>>(), ["amy", "bob"]);
    assert_eq!(many["bob"], attrs(&[("avatarurl", "http://x/b.png")]));
    assert_eq!(s.attribute_bytes(a).await.unwrap(), (8 + 7 + 4 + 2 + 9 + 14) as u64);

    assert!(s.delete_attributes(a, "amy").await.unwrap());
    assert!(!s.delete_attributes(a, "amy").await.unwrap());
    assert!(s.attributes(a, "amy").await.unwrap().is_empty());
    assert_eq!(s.attribute_bytes(a).await.unwrap(), 23);
    assert_eq!(s.attribute_bytes(app(s).await).await.unwrap(), 0);
}
