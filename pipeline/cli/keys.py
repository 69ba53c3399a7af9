"""``biosig-edge keys``: an Ed25519 key pair for signing artifact folders."""

from __future__ import annotations


def cmd_keys(args) -> int:
    from pipeline.manifest import new_keypair

    private, public = new_keypair(args.folder, args.name)
    print(
        f"private key: {private} (keep it off devices; mode 0600)\npublic key:  {public} (give it to devices: "
        f"--trusted-key {public}, or BIOSIG_EDGE_TRUSTED_KEY)"
    )
    return 0


def add_parser(sub) -> None:
    """``keys``."""
    p = sub.add_parser(
        "keys",
        help="make an Ed25519 key pair for signing artifact folders",
        description="Write NAME.key (private, mode 0600) and NAME.pub (public) into FOLDER. "
        "Sign folders with the private key ('biosig-edge sign'); give devices the "
        "public one (--trusted-key or $BIOSIG_EDGE_TRUSTED_KEY): they then refuse "
        "folders that are unsigned or signed by another key.",
    )
    p.add_argument("folder", help="where to write the keys")
    p.add_argument("--name", default="biosig-edge", help="file name stem (default biosig-edge)")
    p.set_defaults(func=cmd_keys)
