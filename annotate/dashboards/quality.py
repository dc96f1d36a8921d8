"""The quality charts' figures: agreement (from project_agreement), gold accuracy (from the
members' counters), and, as pure functions over the tallies, the label distribution, proposal
acceptance per model version and review outcomes."""

from collections import defaultdict
from collections.abc import Sequence

from annotate.dashboards.figures import (
    REVIEW_OUTCOMES,
    Agreement,
    AgreementPair,
    AgreementScope,
    AnnotatorGold,
    AnnotatorRef,
    AnnotatorReviews,
    Gold,
    LabelCount,
    Labels,
    Proposals,
    Reviews,
    SourceCount,
    VersionAcceptance,
)
from annotate.dashboards.keys import _by_name, _name, _parts, _share
from annotate.models import FinalSource, Label, Membership, Project
from annotate.quality.agreement import ProjectAgreement
from annotate.quality.gold import GOLD_MIN_ANSWERS, gold_accuracy


def _scope(scope) -> AgreementScope:
    return AgreementScope(
        scope=scope.scope,
        items=scope.items,
        percent_agreement=scope.percent_agreement,
        krippendorff_alpha=scope.krippendorff_alpha,
        fleiss_kappa=scope.fleiss_kappa,
        fleiss_m=scope.fleiss_m,
        fleiss_items=scope.fleiss_items,
    )


def _agreement(figures: ProjectAgreement) -> Agreement:
    whole = figures.scope("")
    pairs = tuple(
        AgreementPair(
            annotator_a=p.annotator_a,
            annotator_b=p.annotator_b,
            username_a=p.username_a,
            username_b=p.username_b,
            items=p.items,
            agreed=p.agreed,
            percent_agreement=p.percent_agreement,
            cohen_kappa=p.cohen_kappa,
            f1=p.f1,
        )
        for p in (whole.pair_figures if whole else ())
    )
    return Agreement(
        multi_label=figures.multi_label,
        overall=_scope(whole) if whole else AgreementScope("", 0, None, None, None, 0, 0),
        scopes=tuple(_scope(s) for s in figures.scopes),
        annotators=tuple(AnnotatorRef(annotator_id=a.id, username=a.username) for a in figures.annotators),
        kappa_matrix=whole.kappa_matrix if whole else (),
        pairs=pairs,
    )


def _gold(project: Project, members: Sequence[Membership]) -> Gold:
    rows = []
    for m in members:
        if m.role != Membership.Role.ANNOTATOR and not m.gold_answers:
            continue
        accuracy = gold_accuracy(answers=m.gold_answers, correct=m.gold_correct)
        rows.append(
            AnnotatorGold(
                annotator_id=m.user_id,
                username=m.user.get_username(),
                answers=accuracy.answers,
                correct=accuracy.correct,
                accuracy=accuracy.accuracy,
                low=accuracy.low,
                high=accuracy.high,
                paused=m.paused,
            )
        )
    rows.sort(key=lambda r: (r.username.lower(), r.annotator_id))
    return Gold(
        pause_below=project.gold_pause_below, min_answers_to_pause=GOLD_MIN_ANSWERS, annotators=tuple(rows)
    )


def _label_names(project: Project) -> list[str]:
    return list(
        Label.objects.filter(project_id=project.pk).order_by("order", "id").values_list("name", flat=True)
    )


_COUNTS = {Project.TaskType.IMAGE_BOXES: "boxes", Project.TaskType.TEXT_SPANS: "spans"}


def _labels(tallies, label_names: Sequence[str], counts: str = "items") -> Labels:
    sources = {raw: n for raw, n in tallies.get("final_source", {}).items() if n > 0}
    total = sum(sources.values())
    counted = {raw: n for raw, n in tallies.get("final_label", {}).items() if n > 0}
    order = list(label_names) + sorted(set(counted) - set(label_names))
    whole = total if counts == "items" else sum(counted.values())
    labels = tuple(
        LabelCount(label=name, items=counted.get(name, 0), share=_share(counted.get(name, 0), whole))
        for name in order
    )
    known = dict(FinalSource.choices)
    source_order = list(known) + sorted(set(sources) - set(known))
    rows = tuple(
        SourceCount(
            source=s, name=known.get(s, s), items=sources.get(s, 0), share=_share(sources.get(s, 0), total)
        )
        for s in source_order
    )
    return Labels(total_items=total, labels=labels, sources=rows, counts=counts)


def _proposals(tallies) -> Proposals:
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"shown": 0, "accepted": 0})
    for raw, n in tallies.get("proposal", {}).items():
        parts = _parts(raw, 2)
        if parts is None or not isinstance(parts[0], int) or parts[1] not in ("shown", "accepted"):
            continue
        counts[parts[0]][parts[1]] += n
    return Proposals(
        versions=tuple(
            VersionAcceptance(
                model_version_id=v,
                shown=counts[v]["shown"],
                accepted=counts[v]["accepted"],
                rate=_share(counts[v]["accepted"], counts[v]["shown"]),
            )
            for v in sorted(counts)
        )
    )


def _reviews(tallies, names) -> Reviews:
    counts: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(REVIEW_OUTCOMES, 0))
    for raw, n in tallies.get("review", {}).items():
        parts = _parts(raw, 2)
        if parts is None or not isinstance(parts[0], int) or parts[1] not in REVIEW_OUTCOMES:
            continue
        counts[parts[0]][parts[1]] += n
    rows = []
    for a in _by_name(counts, names):
        c = counts[a]
        reviewed = sum(c.values())
        rows.append(
            AnnotatorReviews(
                annotator_id=a,
                username=_name(names, a),
                accepted=c["accepted"],
                corrected=c["corrected"],
                rejected=c["rejected"],
                reviewed=reviewed,
                accepted_share=_share(c["accepted"], reviewed),
            )
        )
    return Reviews(annotators=tuple(rows))
