"""The framework's floor: FastAPI with one `async def` route answering constant JSON.

No middleware, no dependency, no database: what uvicorn + FastAPI cost per request on this
core, measured by bench/floors.py beside userbase's own /healthz.
"""

from fastapi import FastAPI
from starlette.responses import Response

app = FastAPI(
    telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
)


@app.get("/healthz")
@app.get("/users/1")  # what bench/servers.py asks for to know a server is up
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
