"""``biosig-edge sign``: sign an artifact folder."""

from __future__ import annotations


def cmd_sign(args) -> int:
    from pipeline.manifest import sign_folder

    print(f"signed: {sign_folder(args.artifact_dir, args.key)}")
    return 0


def add_parser(sub) -> None:
    """``sign``."""
    p = sub.add_parser(
        "sign",
        help="sign an artifact folder (Ed25519)",
        description="Check an artifact folder (manifest, digest, every file's sha256) and sign "
        "its manifest into manifest.sig with an Ed25519 private key.",
    )
    p.add_argument("artifact_dir", help="artifact folder from 'biosig-edge export'")
    p.add_argument("--key", required=True, help="private key (PEM) from 'biosig-edge keys'")
    p.set_defaults(func=cmd_sign)
