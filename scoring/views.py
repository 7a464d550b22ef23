"""Supervisor pages: model versions (compare, train, promote), strategies, champion/challenger results.

Supervisors only (``supervision.views.supervisor_required``): 403 for agents and lender users.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supervision.views import supervisor_required

from . import selectors, services, strategy_services
from .features import FEATURES
from .forms import ExperimentForm, StrategyForm
from .models import Experiment, ScoreModel, Strategy
from .strategy import DEFAULT_STRATEGY
from .tasks import scores_refresh_task


def _coefficients(model: ScoreModel | None) -> dict[str, float]:
    if model is None or model.kind != ScoreModel.Kind.LOGISTIC:
        return {}
    return dict(zip(model.features, model.params.get("coef", []), strict=False))


@require_GET
@supervisor_required
def model_list(request):
    models = list(selectors.score_model_list())
    by_version = {m.version: m for m in models}
    a = by_version.get(int(request.GET["a"])) if request.GET.get("a", "").isdigit() else None
    b = by_version.get(int(request.GET["b"])) if request.GET.get("b", "").isdigit() else None
    compare = None
    if a and b:
        ca, cb = _coefficients(a), _coefficients(b)
        compare = {"a": a, "b": b, "rows": [(f, ca.get(f), cb.get(f)) for f in FEATURES]}
    return render(request, "scoring/model_list.html", {"models": models, "compare": compare, "features": FEATURES})


@require_POST
@supervisor_required
def model_train(request):
    try:
        row = services.score_model_train(actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Model version %(version)s trained; compare it, then promote it.") % {"version": row.version})
    return redirect("scoring:models")


@require_POST
@supervisor_required
def model_promote(request, pk: int):
    model = get_object_or_404(ScoreModel, pk=pk)
    services.score_model_promote(actor=request.user, model=model)
    # Re-score with the promoted version in the background (eager in the embedded run).
    scores_refresh_task.delay()
    messages.success(request, _("Version %(version)s is now in use; scores are being refreshed.") % {"version": model.version})
    return redirect("scoring:models")


@require_http_methods(["GET", "POST"])
@supervisor_required
def strategy_list(request):
    form = StrategyForm(request.POST or None, initial={
        "code": "standard", "name": _("Standard"), "rules": json.dumps(DEFAULT_STRATEGY, indent=1)})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            row = strategy_services.strategy_publish(actor=request.user, code=d["code"], name=d["name"], rules=d["rules"],
                                                     effective_from=d["effective_from"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Strategy %(code)s v%(version)s published.") % {"code": row.code, "version": row.version})
            return redirect("scoring:strategies")
    rows = Strategy.objects.select_related("created_by").order_by("code", "-version")
    return render(request, "scoring/strategy_list.html", {
        "strategies": [(s, json.dumps(s.rules, ensure_ascii=False)) for s in rows], "form": form})


@require_http_methods(["GET", "POST"])
@supervisor_required
def experiment_list(request):
    form = ExperimentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            strategy_services.experiment_set(
                actor=request.user, lender=d["lender"], champion=d["champion"], challenger=d["challenger"],
                challenger_share=d["challenger_share"], holdout_share=d["holdout_share"], seed=d["seed"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Experiment saved."))
            return redirect("scoring:experiments")
    experiments = [(e, selectors.experiment_results(experiment=e))
                   for e in Experiment.objects.select_related("lender").order_by("lender__name")]
    return render(request, "scoring/experiments.html", {"experiments": experiments, "form": form})
