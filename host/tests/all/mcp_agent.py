"""An MCP agent for the tests: the official Python SDK (`mcp`) as a client of a host's
`/mcp`, driven line by line so one session spans the whole test.

Usage: python mcp_agent.py URL (the bearer token in MCP_TOKEN, if any). Each line on stdin
is a JSON command, answered by one JSON line on stdout:
  {"op": "list_tools"}                 -> {"server": {...}, "tools": [{name, description, inputSchema}]}
  {"op": "call", "name": N, "arguments": {...}}
                                       -> {"is_error": bool, "structured": ..., "text": "..."}
  {"op": "quit"}                       -> ends the session (DELETE) and exits
"""

import json
import os
import sys

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


def emit(value) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def main(url: str) -> None:
    headers = {}
    token = os.environ.get("MCP_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                while True:
                    line = await anyio.to_thread.run_sync(sys.stdin.readline)
                    if not line:
                        return
                    cmd = json.loads(line)
                    if cmd["op"] == "quit":
                        return
                    if cmd["op"] == "list_tools":
                        listed = await session.list_tools()
                        emit({
                            "server": {
                                "name": init.server_info.name,
                                "instructions": init.instructions,
                                "protocol_version": str(init.protocol_version),
                            },
                            "tools": [
                                {
                                    "name": t.name,
                                    "description": t.description,
                                    "inputSchema": t.input_schema,
                                }
                                for t in listed.tools
                            ],
                        })
                    elif cmd["op"] == "call":
                        result = await session.call_tool(cmd["name"], cmd.get("arguments"))
                        emit({
                            "is_error": bool(result.is_error),
                            "structured": result.structured_content,
                            "text": "".join(
                                c.text for c in result.content if getattr(c, "text", None)
                            ),
                        })
                    else:
                        emit({"unknown_op": cmd["op"]})


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
