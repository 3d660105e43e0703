"""Deleting a product from the console (its owners only): a confirmation page where the owner
types the product's slug, and the POST that deletes everything of it
(`console/product_deletion.py`), writes the audit row and goes back to the products list.
A wrong confirmation changes nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth.services import auth_services
from console.guard import HOME, ProductAccess, audit, require, require_form
from console.pages_products import product_context
from console.product_deletion import delete_product
from console.services import console_services
from console.web import page, redirect, render


def _confirmation(
    request: Request, access: ProductAccess, error: str | None = None, status: int = 200
) -> Response:
    return render(request, "product_delete.html", product_context(access, error=error), status)


@page
async def delete_form(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "product.delete")
    return _confirmation(request, access)


@page
async def delete(request: Request) -> Response:
    access, form = await require_form(request, "product.delete")
    product = access.product
    if form.get("confirm", "") != product.slug:  # exactly the slug: a deletion is not undone
        error = "Type the product's slug exactly to delete it. Nothing was deleted."
        return _confirmation(request, access, error, 422)
    db = console_services(request).db
    pool_deleted = await delete_product(db, auth_services(request), product)
    await audit(
        request,
        access,
        "product.delete",
        target=product.slug,
        detail={"name": product.name, "identity_pool_deleted": pool_deleted},
    )
    return redirect(HOME)
