#!/bin/sh
# Run on the server over ssh by the tova client (`sh -c "$(cat this)" sh ARGS`).
# $1 = python for the venv, $2 = venv dir. Creates the venv unless it has a python.
[ -x "$2/bin/python" ] && exit 0
"$1" -m venv "$2"
