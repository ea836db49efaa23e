"""verify_snp_report gives every shared SEV-SNP vector its expected verdict, stage and claims."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from veil.attestation.backends.sev_snp import verify_snp_report
from veil.errors import ConfigurationError, EvidenceError

from .conftest import Vector, pem_to_der, vector_inputs

SNP_VECTOR_IDS = [
    "gosevguest-snp-milan-vcek",
    "trustee-snp-milan-vcek",
    "trustee-snp-vcek-invalid-legacy",
    "trustee-snp-vcek-invalid-new",
    "tampered-snp-byte42",
    "tampered-snp-byte384",
]
TRUSTEE = "trustee-snp-milan-vcek"


def test_the_parametrized_ids_cover_every_snp_vector(snp_vectors: dict[str, Vector]) -> None:
    """Every sev-snp vector in index.json is exercised by the verdict test below."""
    assert sorted(snp_vectors) == sorted(SNP_VECTOR_IDS)


@pytest.mark.parametrize("vector_id", SNP_VECTOR_IDS)
def test_vector_verdict_and_stage(
    vectors: Path, snp_vectors: dict[str, Vector], vector_id: str
) -> None:
    """Each vector is accepted, or rejected at its reject_stage, at its verify_at time."""
    vector = snp_vectors[vector_id]
    report, certs, anchors, now = vector_inputs(vectors, vector)
    if vector["expect"] == "accept":
        claims = verify_snp_report(report, certs=certs, trust_anchors=anchors, now=now)
        assert claims.tee == "sev-snp"
    else:
        with pytest.raises(EvidenceError) as caught:
            verify_snp_report(report, certs=certs, trust_anchors=anchors, now=now)
        assert caught.value.step == vector["reject_stage"]


@pytest.mark.parametrize("vector_id", ["gosevguest-snp-milan-vcek", TRUSTEE])
def test_accepted_claims_equal_the_index(
    vectors: Path, snp_vectors: dict[str, Vector], vector_id: str
) -> None:
    """Every identity value the index lists for an accepted vector equals the claims' field."""
    vector = snp_vectors[vector_id]
    report, certs, anchors, now = vector_inputs(vectors, vector)
    claims = verify_snp_report(report, certs=certs, trust_anchors=anchors, now=now)
    for key in vector["identity_keys"]:
        assert claims.fields[key] == vector[key], key
    assert claims.unique_id.hex() == vector["measurement"]
    assert claims.report_data.hex() == vector["report_data"]
    assert claims.debug is vector["debug"]
    assert (claims.signer_id, claims.product_id, claims.security_version) == (b"", 0, 0)
    assert (claims.tcb_status, claims.advisories) == ("UpToDate", ())


def test_gosevguest_report_allows_debug(vectors: Path, snp_vectors: dict[str, Vector]) -> None:
    """POLICY 0xB0000 has bit 19 set, so the claims say debug (a no-debug policy must refuse)."""
    report, certs, anchors, now = vector_inputs(vectors, snp_vectors["gosevguest-snp-milan-vcek"])
    claims = verify_snp_report(report, certs=certs, trust_anchors=anchors, now=now)
    assert claims.debug is True
    assert claims.fields["policy"] == 0xB0000


def test_ark_only_anchor_accepts_an_ask_shipped_with_the_evidence(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """With only the ARK pinned, an ASK given with the evidence is trusted because the ARK signs it."""
    report, certs, anchors, now = vector_inputs(vectors, snp_vectors[TRUSTEE])
    ask, ark = anchors[0], anchors[1]
    claims = verify_snp_report(report, certs=[*certs, ask], trust_anchors=[ark], now=now)
    assert claims.fields["chip_id"] == snp_vectors[TRUSTEE]["chip_id"]


def test_ark_only_anchor_without_an_ask_is_a_chain_failure(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """A VCEK cannot chain to the ARK without its ASK."""
    report, certs, anchors, now = vector_inputs(vectors, snp_vectors[TRUSTEE])
    with pytest.raises(EvidenceError) as caught:
        verify_snp_report(report, certs=certs, trust_anchors=[anchors[1]], now=now)
    assert caught.value.step == "chain"


def test_anchors_without_a_self_signed_ark_are_a_configuration_error(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """Pinning only the ASK is a configuration mistake: nothing self-signed is trusted."""
    report, certs, anchors, now = vector_inputs(vectors, snp_vectors[TRUSTEE])
    with pytest.raises(ConfigurationError, match="ARK"):
        verify_snp_report(report, certs=certs, trust_anchors=[anchors[0]], now=now)


def test_an_anchor_that_is_not_der_is_a_configuration_error(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """A PEM bundle passed where DER is expected is reported as configuration, not evidence."""
    report, certs, _, now = vector_inputs(vectors, snp_vectors[TRUSTEE])
    pem = (vectors / snp_vectors[TRUSTEE]["trust_anchor"]).read_bytes()
    with pytest.raises(ConfigurationError, match="DER"):
        verify_snp_report(report, certs=certs, trust_anchors=[pem], now=now)


def test_an_ark_from_the_evidence_is_never_trusted(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """Shipping the ARK and ASK inside ``certs`` does not replace pinning the ARK."""
    report, certs, anchors, now = vector_inputs(vectors, snp_vectors[TRUSTEE])
    with pytest.raises(ConfigurationError):
        verify_snp_report(report, certs=[*certs, *anchors], trust_anchors=[], now=now)


@pytest.mark.parametrize(
    "when",
    [dt.datetime(2031, 1, 1, tzinfo=dt.UTC), dt.datetime(2022, 1, 1, tzinfo=dt.UTC)],
    ids=["after-vcek-expiry", "before-vcek-issue"],
)
def test_a_vcek_outside_its_validity_is_a_chain_failure(
    vectors: Path, snp_vectors: dict[str, Vector], when: dt.datetime
) -> None:
    """Certificates are checked at the explicit ``now``, never at wall-clock time."""
    report, certs, anchors, _ = vector_inputs(vectors, snp_vectors[TRUSTEE])
    with pytest.raises(EvidenceError) as caught:
        verify_snp_report(report, certs=certs, trust_anchors=anchors, now=when)
    assert caught.value.step == "chain"


def test_a_naive_now_is_a_configuration_error(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """``now`` must carry a time zone so that validity comparisons are unambiguous."""
    report, certs, anchors, _ = vector_inputs(vectors, snp_vectors[TRUSTEE])
    with pytest.raises(ConfigurationError):
        verify_snp_report(report, certs=certs, trust_anchors=anchors, now=dt.datetime(2025, 1, 1))


def test_the_milan_ask_ark_bundle_of_go_sev_guest_also_verifies_the_trustee_report(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """Both pinned bundles hold the same ARK, so either verifies either Milan VCEK."""
    report, certs, _, now = vector_inputs(vectors, snp_vectors[TRUSTEE])
    bundle = pem_to_der(
        (vectors / "google-go-sev-guest/verify/trust/ask_ark_milan.pem").read_bytes()
    )
    verify_snp_report(report, certs=certs, trust_anchors=bundle, now=now)
