#!/bin/sh
# Run on the server over ssh by the tova client (`sh -c "$(cat this)" sh ARGS`).
# $1 = link target, $2 = link path. Prints what it did: "same" or "linked".
if [ "$(readlink "$2" 2>/dev/null)" = "$1" ]; then echo same; exit 0; fi
mkdir -p "$(dirname "$2")" && ln -sfn "$1" "$2" && echo linked
