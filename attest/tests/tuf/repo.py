#!/usr/bin/env python3
"""A TUF repository made with python-tuf (the reference implementation), independently of vouch.

Used by vouch's TUF tests: `repo.py DIR COMMAND [ARG]`. DIR/repo is what the mirror serves (Sigstore's
layout: metadata at the top, targets under targets/, consistent snapshots); DIR/state.json names the keys
in use and DIR/history keeps every timestamp written, for the rollback case. Keys are ed25519, derived from
their names, so each command can sign again without a key store.

Commands:
  init TARGET         version 1 of every role, TARGET published as trusted_root.json
  publish TARGET      a new trusted_root.json: targets, snapshot and timestamp bumped
  rotate-root         root and timestamp keys replaced: root N+1 signed by the old and the new root key,
                      then a timestamp signed by the new timestamp key
  expire-timestamp    a correctly signed timestamp that expired yesterday
  rollback-timestamp  the timestamp before the current one served again
  untrusted-timestamp a new timestamp signed by a key the root does not list (under threshold)
  mix-and-match       the current N.targets.json replaced by the previous version's
  bump-timestamp      a fresh, valid timestamp
"""

import hashlib
import json
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TARGET_NAME = "trusted_root.json"
ROLES = ("root", "targets", "snapshot", "timestamp")


def signer(name):
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


def in_days(days):
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0)


class Repo:
    def __init__(self, base):
        self.base = base
        self.repo = os.path.join(base, "repo")
        self.history = os.path.join(base, "history")
        self.state_file = os.path.join(base, "state.json")

    # state: which key signs each role, and the versions in force
    def load_state(self):
        with open(self.state_file) as f:
            return json.load(f)

    def save_state(self, state):
        with open(self.state_file, "w") as f:
            json.dump(state, f, indent=1)

    def path(self, name):
        return os.path.join(self.repo, name)

    def write(self, md, name, *signers):
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        md.to_file(self.path(name), serializer=JSONSerializer(compact=False))

    def read(self, name):
        return Metadata.from_file(self.path(name))

    def write_timestamp(self, ts, state, key_name=None):
        self.write(ts, "timestamp.json", signer(key_name or state["keys"]["timestamp"]))
        shutil.copy(self.path("timestamp.json"), os.path.join(self.history, f"{ts.signed.version}.timestamp.json"))

    def init(self, target):
        os.makedirs(os.path.join(self.repo, "targets"), exist_ok=True)
        os.makedirs(self.history, exist_ok=True)
        state = {"keys": {role: f"{role}-1" for role in ROLES}}
        root = Metadata(Root(expires=in_days(365), consistent_snapshot=True))
        for role in ROLES:
            root.signed.add_key(signer(state["keys"][role]).public_key, role)
        self.write(root, "1.root.json", signer(state["keys"]["root"]))
        shutil.copy(self.path("1.root.json"), self.path("root.json"))
        targets = Metadata(Targets(expires=in_days(90)))
        self.add_target(targets, target)
        self.write(targets, "1.targets.json", signer(state["keys"]["targets"]))
        snapshot = Metadata(Snapshot(expires=in_days(30)))
        self.write(snapshot, "1.snapshot.json", signer(state["keys"]["snapshot"]))
        ts = Metadata(Timestamp(expires=in_days(7)))
        self.save_state(state)
        self.write_timestamp(ts, state)

    def add_target(self, targets, target):
        with open(target, "rb") as f:
            data = f.read()
        tf = TargetFile.from_data(TARGET_NAME, data, ["sha256"])
        targets.signed.targets[TARGET_NAME] = tf
        with open(os.path.join(self.repo, "targets", f"{tf.hashes['sha256']}.{TARGET_NAME}"), "wb") as f:
            f.write(data)

    def current(self, role):
        ts = self.read("timestamp.json")
        if role == "timestamp":
            return ts
        sv = ts.signed.snapshot_meta.version
        snap = Metadata.from_file(self.path(f"{sv}.snapshot.json"))
        if role == "snapshot":
            return snap
        return Metadata.from_file(self.path(f"{snap.signed.meta['targets.json'].version}.targets.json"))

    def bump_timestamp(self, snapshot_version=None, expires=None, key_name=None):
        state = self.load_state()
        ts = self.read("timestamp.json")
        ts.signed.version += 1
        ts.signed.expires = expires or in_days(7)
        if snapshot_version is not None:
            ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
        self.write_timestamp(ts, state, key_name)

    def publish(self, target):
        state = self.load_state()
        targets = self.current("targets")
        targets.signed.version += 1
        self.add_target(targets, target)
        self.write(targets, f"{targets.signed.version}.targets.json", signer(state["keys"]["targets"]))
        snap = self.current("snapshot")
        snap.signed.version += 1
        snap.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        self.write(snap, f"{snap.signed.version}.snapshot.json", signer(state["keys"]["snapshot"]))
        self.bump_timestamp(snapshot_version=snap.signed.version)

    def rotate_root(self):
        state = self.load_state()
        root = self.read("root.json")
        old = signer(state["keys"]["root"])
        version = root.signed.version + 1
        new_name = f"root-{version}"
        new = signer(new_name)
        root.signed.revoke_key(old.public_key.keyid, "root")
        root.signed.add_key(new.public_key, "root")
        # The timestamp key too: a client that did not follow the rotation refuses the next timestamp.
        ts_name = f"timestamp-{version}"
        root.signed.revoke_key(signer(state["keys"]["timestamp"]).public_key.keyid, "timestamp")
        root.signed.add_key(signer(ts_name).public_key, "timestamp")
        root.signed.version = version
        root.signed.expires = in_days(365)
        self.write(root, f"{version}.root.json", old, new)
        shutil.copy(self.path(f"{version}.root.json"), self.path("root.json"))
        state["keys"]["root"] = new_name
        state["keys"]["timestamp"] = ts_name
        self.save_state(state)
        self.bump_timestamp()

    def rollback_timestamp(self):
        version = self.read("timestamp.json").signed.version
        shutil.copy(os.path.join(self.history, f"{version - 1}.timestamp.json"), self.path("timestamp.json"))

    def mix_and_match(self):
        version = self.current("targets").signed.version
        shutil.copy(self.path(f"{version - 1}.targets.json"), self.path(f"{version}.targets.json"))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    repo, command, args = Repo(argv[1]), argv[2], argv[3:]
    if command == "init":
        repo.init(*args)
    elif command == "publish":
        repo.publish(*args)
    elif command == "rotate-root":
        repo.rotate_root()
    elif command == "expire-timestamp":
        repo.bump_timestamp(expires=in_days(-1))
    elif command == "rollback-timestamp":
        repo.rollback_timestamp()
    elif command == "untrusted-timestamp":
        repo.bump_timestamp(key_name="intruder")
    elif command == "mix-and-match":
        repo.mix_and_match()
    elif command == "bump-timestamp":
        repo.bump_timestamp()
    else:
        sys.exit(f"unknown command {command!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
