#!/usr/bin/env bash
# The agents' own environments, for the end-to-end tests (tests/test_agents_*.py) and
# bench/agents.py. Users' agents live in their own venvs with the newest SDKs, never in
# prefire's, and so do ours: under .venv-agents/ at the repo root.
#
#   bash bench/agents/setup.sh [PART...]     parts: mcp2 mcp1 node sdks (default: all)
#
#   mcp2  openai-agents with what its default install brings (mcp 2.x, openai 3.x)
#   mcp1  openai-agents on mcp 1.x, LangGraph with LangChain's MCP adapters
#   sdks  the providers' own SDKs on mcp 2.x: anthropic 2.x, google-genai 3.x, openai 3.x
#   node  the Node clients from npm (Claude Code cli.js, Codex) under .venv-agents/node,
#         and the native Claude Code build under .venv-agents/claude-native
#
# Idempotent: a part made from the same pinned file is left as it is. Quiet: one line per
# part it makes or cannot make. Bounded: each part gets AGENTS_SETUP_TIMEOUT seconds
# (default 600). It never fails: a part it cannot make gets .venv-agents/PART.failed with
# the reason, and the tests that need that part skip, saying it.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/bench/agents
envs=$root/.venv-agents
limit=${AGENTS_SETUP_TIMEOUT:-600}
mkdir -p "$envs"

# PART.ok holds the digest of what the part was made from; PART.failed says why it is missing.
done_with() { # part digest
  echo "$2" >"$envs/$1.ok"
  echo "agents setup: $1 ready in .venv-agents/$1"
}

failed() { # part reason
  rm -f "$envs/$1.ok"
  echo "$2" >"$envs/$1.failed"
  echo "agents setup: $1 not installed: $2 (the tests that need it will skip)" >&2
}

is_current() { # part digest
  [[ -f $envs/$1.ok && "$(cat "$envs/$1.ok")" == "$2" ]]
}

python_part() { # part: a venv from requirements-PART.txt
  local part=$1 req=$here/requirements-$1.txt venv=$envs/$1 digest
  digest=$(cat "$req" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-64)
  is_current "$part" "$digest" && [[ -x $venv/bin/python ]] && return 0
  rm -rf "$venv" "$envs/$part.ok" "$envs/$part.failed"
  if timeout "$limit" bash -c 'python3 -m venv "$1" && "$1/bin/pip" install -q --no-input -r "$2"' \
    _ "$venv" "$req" >"$envs/$part.log" 2>&1; then
    done_with "$part" "$digest"
  else
    local status=$?
    [[ $status == 124 ]] && failed "$part" "pip install -r $req took over ${limit} s" && return 0
    failed "$part" "pip install -r $req failed ($(grep -m1 -E '^ERROR' "$envs/$part.log" \
      || echo "exit status $status"); see .venv-agents/$part.log)"
  fi
}

# The Node clients from npm, pinned: Claude Code 2.1.112 (the last release that runs as
# cli.js on Node 20) and Codex under .venv-agents/node; the native Claude Code build (its
# own prefix: one prefix holds one version of a package) under .venv-agents/claude-native.
# A client counts as installed only once it answers --version here.
node_clients=("@anthropic-ai/claude-code@2.1.112" "@openai/codex@0.171.0")
claude_native=("@anthropic-ai/claude-code@2.1.332")

npm_part() { # part check-command package...
  local part=$1 check=$2 prefix=$envs/$1 digest status
  shift 2
  digest=$(printf '%s\n' "$@" | cat - "${BASH_SOURCE[0]}" | sha256sum | cut -c1-64)
  is_current "$part" "$digest" && return 0
  rm -rf "$prefix" "$envs/$part.ok" "$envs/$part.failed"
  command -v npm >/dev/null || { failed "$part" "npm is not on PATH"; return 0; }
  mkdir -p "$prefix"
  timeout "$limit" npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$@" \
    >"$envs/$part.log" 2>&1
  status=$?
  [[ $status == 124 ]] && { failed "$part" "npm install $* took over ${limit} s"; return 0; }
  [[ $status != 0 ]] && { failed "$part" "npm install $* failed (exit status $status; see .venv-agents/$part.log)"; return 0; }
  if ! (cd "$prefix" && timeout 120 bash -c "$check") >>"$envs/$part.log" 2>&1; then
    failed "$part" "installed, but \`$check\` fails here (see .venv-agents/$part.log)"
    return 0
  fi
  done_with "$part" "$digest"
}

node_part() {
  npm_part node "node node_modules/@anthropic-ai/claude-code/cli.js --version \
    && node node_modules/@openai/codex/bin/codex.js --version" "${node_clients[@]}"
  npm_part claude-native "node_modules/@anthropic-ai/claude-code/bin/claude.exe --version" \
    "${claude_native[@]}"
}

parts=("$@")
[[ ${#parts[@]} == 0 ]] && parts=(mcp2 mcp1 node sdks)
for part in "${parts[@]}"; do
  case $part in
    mcp2 | mcp1 | sdks) python_part "$part" ;;
    node) node_part ;;
    *) echo "agents setup: unknown part $part (parts: mcp2 mcp1 node sdks)" >&2 ;;
  esac
done
exit 0
