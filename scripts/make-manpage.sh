#!/bin/sh
# scripts/make-manpage.sh BIN OUT: the re2tal(1) man page, generated from the binary's own
# --help texts (re2tal --help, then re2tal COMMAND --help for each command), so it cannot drift
# from the code. The build runs it; `make install` installs OUT under share/man/man1.
set -eu
bin=$1
out=$2
# roff: backslashes escaped, lines starting with . or ' protected
esc() { sed -e 's/\\/\\e/g' -e "s/^\\./\\\\\\&./" -e "s/^'/\\\\\\&'/"; }
version=$("$bin" version | awk '{print $2}')
commands=$("$bin" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
tmp="$out.tmp.$$"
{
    echo ".TH RE2TAL 1 \"\" \"re2tal $version\" \"User Commands\""
    echo ".SH NAME"
    echo "re2tal \\- temporal action localization trained end to end, with reversible video backbones"
    echo ".SH SYNOPSIS"
    echo ".B re2tal"
    echo "[\\-\\-threads N] COMMAND [ARGS...]"
    echo ".SH DESCRIPTION"
    echo ".nf"
    "$bin" --help | esc
    echo ".fi"
    echo ".SH COMMANDS"
    for c in $commands; do
        echo ".SS $c"
        echo ".nf"
        "$bin" "$c" --help 2>&1 | esc || true
        echo ".fi"
    done
    echo ".SH FILES"
    echo "Shipped training configs are installed in"
    echo ".I PREFIX/share/re2tal/configs"
    echo "and found by name from anywhere: re2tal train thumos14_re2swin_t.json \\-\\-set ..."
    echo ".SH SEE ALSO"
    echo "README.md and configs/README.md of the source tree."
} > "$tmp"
mv "$tmp" "$out"
