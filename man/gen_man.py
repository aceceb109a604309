#!/usr/bin/env python3
"""Builds a man page from its hand-written source and the built binary's --help.

usage: gen_man.py SOURCE.in OUTPUT ROAM_BINARY VERSION

SOURCE.in is roff. A line `.\\" @OPTIONS <subcommand>@` is replaced by one .TP entry per option
that `roam <subcommand> --help` lists (`.\\" @OPTIONS@` for the main command), so the OPTIONS
section always names every flag the binary has, including flags added after the page was
written; the rest of the page (description, examples, exit status, files) is maintained by hand.
@VERSION@ becomes the project version.
"""
import re
import subprocess
import sys

OPTION = re.compile(r"^  (-\w,)?(--[\w-]+)(.*)$")


def esc(text):
    """Escapes text for roff: backslashes, hyphens of options, leading control characters."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w-])--?\w[\w-]*", lambda m: m.group(0).replace("-", "\\-"), text)
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def options(binary, sub):
    argv = [binary] + ([sub] if sub else []) + ["--help"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    lines = out.split("\n")
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "Options:") + 1
    except StopIteration:
        return []
    entries = []
    for line in lines[start:]:
        if not line.strip():
            break  # the end of the Options: block (Subcommands: follows)
        m = OPTION.match(line)
        if m:
            rest = m.group(3)
            # CLI11 pads the name column; the description starts after a run of 2+ spaces.
            parts = re.split(r"\s{2,}", rest.strip(), maxsplit=1) if rest.strip() else [""]
            if rest.startswith(" ") and not rest.startswith("  ") and len(parts) == 2:
                meta, desc = parts
            elif rest.startswith("  "):
                meta, desc = "", rest.strip()
            else:
                meta, desc = (parts[0], parts[1] if len(parts) > 1 else "")
            entries.append([m.group(1) or "", m.group(2), meta, desc])
        elif entries:
            entries[-1][3] += " " + line.strip()  # a wrapped description
    roff = []
    for short, name, meta, desc in entries:
        head = "\\fB" + esc(short) + esc(name) + "\\fR"
        meta = meta.replace("REQUIRED", "(required)")
        if meta:
            m = re.match(r"^(\S+)(.*)$", meta)
            kind, tail = m.group(1), m.group(2)
            default = ""
            if "=" in kind:
                kind, default = kind.split("=", 1)
            kind = kind.split(":")[0]  # UINT:POSITIVE
            head += " \\fI" + esc(kind.lower() if kind != "TEXT" else "value") + "\\fR" + esc(tail)
            if default:
                desc += " (default: " + default + ")"
        roff += [".TP", head, esc(desc.strip())]
    return roff


def main():
    src, dst, binary, version = sys.argv[1:5]
    out = []
    for line in open(src, encoding="utf-8").read().split("\n"):
        m = re.match(r'^\.\\" @OPTIONS ?(\w*)@$', line)
        if m:
            out += options(binary, m.group(1))
        else:
            out.append(line.replace("@VERSION@", version))
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
