"""What happened after an offer was shown: interactions sent by apps, redemptions typed at merchants' tills."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.deps import App, Merchant, Now, RuntimeDep, merchant_id
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.measurement_schemas import INTERACTIONS_BODY, InteractionsOut, RedemptionIn, RedemptionOut

router = APIRouter(prefix="/v1", tags=["measurement"], responses=ERROR_RESPONSES)


@router.post(
    "/interactions", response_model=InteractionsOut, openapi_extra=INTERACTIONS_BODY, operation_id="send_interactions"
)
async def post_interactions(request: Request, app: App, runtime: RuntimeDep, at: Now) -> InteractionsOut:
    """One ``{"impression_id", "type", "ts"?}`` or ``{"interactions": [...]}`` (at most 1,000); each row is
    judged on its own, and one sent twice counts once. Only the body is read here; parsing, checking and the
    Redis append run in the thread pool."""
    body = await request.body()
    return InteractionsOut.of(await run_in_threadpool(runtime.accept_interactions, body, at, app.key_id))


@router.post(
    "/redemptions",
    response_model=RedemptionOut,
    responses=NOT_FOUND | {409: {"description": "the code was already redeemed"}},
    operation_id="redeem",
)
def post_redemption(body: RedemptionIn, principal: Merchant, runtime: RuntimeDep, at: Now) -> RedemptionOut:
    """A code shown at the till: one of your offers' static codes, or a unique code (redeemed once: 409 after).
    Another merchant's code is a 404."""
    done = runtime.redeem(merchant_id(principal), body.code, at)
    return RedemptionOut(offer=done.offer, impression_id=done.impression_id, redeemed_at=done.at)
