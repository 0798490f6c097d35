"""`prefire demo`: a scripted LLM, real MCP and REST tool servers, and an agent on the real
SDKs, run through `prefire run` once without and once with speculation."""
