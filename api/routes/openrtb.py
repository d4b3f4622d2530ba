"""OpenRTB 2.6: exchanges send bid requests with an exchange key, and call back the signed win, billing and loss
notices of the bids they were answered (those need no key: the signature is the credential).

Like ``/v1/nearby``, the bid route skips FastAPI's dependency solving and runs the bidder inline on the event
loop while Redis answers quickly. A bid request is small by rule (``GEOTARGET_MAX_BID_BYTES``, 256 KiB, and
``GEOTARGET_MAX_BID_IMPS``, 20 slots), and a large one is parsed on a thread, so one exchange key cannot stall
the worker that also answers ``/v1/nearby``."""

from __future__ import annotations

from functools import partial
from typing import Annotated, cast

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import RuntimeDep, authorize, clock
from api.errors import ERROR_RESPONSES, error_response
from api.openrtb_schemas import BID_REQUEST_BODY, BidResponseOut, NoticeOut
from geotarget.bidding.notices import InvalidNotice, NoticeKind
from geotarget.bidding.openrtb import BidRequest
from geotarget.bidding.reasons import NoBid
from geotarget.runtime import Runtime

INLINE_PARSE_BYTES = 16 * 1024  # larger bodies are parsed on a thread, off the event loop
router = APIRouter(prefix="/v1/openrtb2", tags=["openrtb"], responses=ERROR_RESPONSES)
_BID_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": BidResponseOut, "description": "A bid per impression slot we fill, or a no-bid with `nbr`"},
    204: {"description": "No bid (docs/openrtb.md says why each happens; the reason is counted in /metrics)"},
}


@router.post("/bid", response_class=Response, responses=_BID_RESPONSES, openapi_extra=BID_REQUEST_BODY)
async def bid(request: Request) -> Response:
    """An OpenRTB 2.6 BidRequest in; a BidResponse, or 204 when nothing fits. Malformed JSON is a 400; JSON
    that is not a BidRequest is a no-bid with ``nbr`` 2."""
    principal = await authorize(request, "exchange")
    at = await clock(request)
    runtime = cast(Runtime, request.app.state.runtime)
    parsed = await _read(request, runtime.settings.max_bid_imps)
    if isinstance(parsed, Response):
        return parsed
    if isinstance(parsed, str):
        return _no_bid(runtime.bidder.refuse(NoBid("invalid_request")), parsed)
    base = runtime.settings.public_url or str(request.base_url)
    call = partial(runtime.bidder.bid, parsed, principal.key_id, at, base)
    answer = call() if runtime.server.quick else await run_in_threadpool(call)
    if isinstance(answer, NoBid):
        return _no_bid(answer, parsed.id)
    return Response(orjson.dumps(answer), media_type="application/json")


@router.api_route("/bid", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def bid_by_another_method() -> None:
    """Without it ``GET /bid`` would reach the notice route below as a notice of kind "bid" (a 422)."""
    raise HTTPException(405, "Method Not Allowed", headers={"Allow": "POST"})


bid_by_another_method.refuses_methods = True  # type: ignore[attr-defined]  # api.errors.allowed_methods


@router.get("/{kind}", response_model=NoticeOut, responses={403: ERROR_RESPONSES[403]}, operation_id="bid_notice")
def notice(
    kind: NoticeKind,
    runtime: RuntimeDep,
    bid: Annotated[str, Query(pattern=r"^[0-9a-f]{32}(\.[0-9]{1,5})?$", description="the bid's id (and shard)")],
    bp: Annotated[str, Query(pattern=r"^[0-9]{1,4}(\.[0-9]{1,6})?$", description="our bid price, as signed")],
    sig: Annotated[str, Query(pattern=r"^[0-9a-f]{32}$", description="the notice's signature")],
    price: Annotated[str | None, Query(max_length=64, description="the clearing price, CPM")] = None,
    reason: Annotated[str | None, Query(max_length=16, description="the exchange's loss reason")] = None,
) -> NoticeOut:
    """``win`` (nurl) and ``bill`` (burl) count the bid's held slots as an impression at the clearing price;
    ``loss`` (lurl) frees them. Each bid settles once; later notices say ``unknown``."""
    try:
        return NoticeOut(bid=bid, outcome=runtime.bidder.settle(kind, bid, bp, sig, price))
    except InvalidNotice as exc:
        raise HTTPException(403, str(exc)) from None
    except ValueError as exc:  # a malformed clearing price
        raise RequestValidationError([{"loc": ("query", "price"), "msg": str(exc), "type": "value_error"}]) from None


async def _read(request: Request, max_imps: int) -> BidRequest | str | Response:
    body = await request.body()  # at most GEOTARGET_MAX_BID_BYTES: BodyLimit refused a larger one unread
    read = partial(_bid_request, body, max_imps)
    return read() if len(body) <= INLINE_PARSE_BYTES else await run_in_threadpool(read)


def _bid_request(body: bytes, max_imps: int) -> BidRequest | str | Response:
    """The request, the id of one we cannot read as a BidRequest (for its no-bid), or a 413 for one with more
    impression slots than we answer (counted before any slot is read)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"the body is not JSON: {exc}") from None
    imps = raw.get("imp") if isinstance(raw, dict) else None
    if isinstance(imps, list) and len(imps) > max_imps:
        message = f"a bid request may carry at most {max_imps} imps (GEOTARGET_MAX_BID_IMPS); this one has {len(imps)}"
        return error_response(413, "too_large", message, "imp")
    try:
        return BidRequest.model_validate(raw)
    except ValidationError:
        request_id = raw.get("id") if isinstance(raw, dict) else None
        return request_id if isinstance(request_id, str) else ""


def _no_bid(no_bid: NoBid, request_id: str) -> Response:
    if no_bid.nbr is None:
        return Response(status_code=204)
    return Response(orjson.dumps({"id": request_id, "nbr": no_bid.nbr}), media_type="application/json")
