"""parse_quote and DcapCollateral.from_json turn wire bytes into typed objects or refuse at 'parse'."""

from __future__ import annotations

import json
import struct

import pytest

from veil.attestation.backends.dcap import (
    DcapCollateral,
    SgxReportBody,
    TdReportBody,
    parse_quote,
)
from veil.errors import EvidenceError

from ._vectors import DcapVector, dcap_vectors, vector


def _refused(data: bytes) -> EvidenceError:
    with pytest.raises(EvidenceError) as caught:
        parse_quote(data)
    assert caught.value.step == "parse"
    return caught.value


def test_every_vector_parses_to_its_index_facts(dcap_vector: DcapVector) -> None:
    """Each quote parses; version, TEE, lengths and body fields match index.json."""
    quote = parse_quote(dcap_vector.quote)
    facts = dcap_vector.entry.get("quote", {})
    assert quote.tee == dcap_vector.entry["tee"]
    assert quote.header.version == facts.get("version", quote.header.version)
    assert quote.size <= len(dcap_vector.quote)
    if "signed_len" in facts:  # exact facts; hex vectors only record the decoded file length
        assert len(quote.signed) == facts["signed_len"]
        assert quote.size == facts["quote_len"]
    if "td_attributes" in dcap_vector.entry:
        assert isinstance(quote.body, TdReportBody)
        assert quote.body.td_attributes.hex() == dcap_vector.entry["td_attributes"]
        assert quote.body.tee_tcb_svn.hex() == dcap_vector.entry["tee_tcb_svn"]
    if "mrenclave" in dcap_vector.entry:
        assert isinstance(quote.body, SgxReportBody)
        assert quote.body.mr_enclave.hex() == dcap_vector.entry["mrenclave"]


def test_v5_exposes_mrservicetd_without_refusing() -> None:
    """A TD 1.5 quote with a non-zero MRSERVICETD parses; the value is reported, not judged."""
    entry = vector("trustee-tdx-v5").entry
    body = parse_quote(vector("trustee-tdx-v5").quote).body
    assert isinstance(body, TdReportBody)
    assert body.mr_service_td is not None
    assert body.mr_service_td.hex() == entry["mr_service_td"]


def test_missing_sept_ve_disable_is_parsed() -> None:
    """A TD without SEPT_VE_DISABLE parses and says so (policy decides, not the parser)."""
    body = parse_quote(vector("gotdxguest-tdx-v4-2023").quote).body
    assert isinstance(body, TdReportBody)
    assert body.sept_ve_disable is False


def test_trailing_bytes_after_the_quote_are_ignored() -> None:
    """Bytes after signed length + 4 + signature data length are not part of the quote."""
    original = vector("dcapqvl-sgx-v3").quote
    assert parse_quote(original + b"extra") == parse_quote(original)


@pytest.mark.parametrize("vector_id", ["dcapqvl-sgx-v3", "dcapqvl-tdx-v4", "gotdxguest-tdx-v5"])
def test_every_truncation_is_refused(vector_id: str) -> None:
    """Cutting a quote anywhere before its last byte is a parse error, never a shorter quote."""
    data = vector(vector_id).quote
    size = parse_quote(data).size
    for length in (*range(0, 700, 7), *range(size - 300, size)):
        _refused(data[:length])


@pytest.mark.parametrize(
    ("offset", "value", "text"),
    [
        (0, 2, "version 2"),
        (0, 6, "version 6"),
        (2, 3, "attestation key type 3"),
        (4, 0x81, "TEE type"),
        (12, 0, "vendor"),
    ],
)
def test_unsupported_header_fields_are_refused(offset: int, value: int, text: str) -> None:
    """Unsupported versions, key types, TEE types and non-Intel QE vendors are parse errors."""
    data = bytearray(vector("dcapqvl-sgx-v3").quote)
    struct.pack_into("<H", data, offset, value)
    assert text in str(_refused(bytes(data)))


def test_signature_data_length_must_be_consumed_exactly() -> None:
    """A signature-data length that disagrees with the nested sizes is a parse error."""
    data = bytearray(vector("dcapqvl-tdx-v4").quote)  # followed by 70 zero bytes
    (length,) = struct.unpack_from("<I", data, 632)
    struct.pack_into("<I", data, 632, length + 1)
    _refused(bytes(data))


def test_other_certification_data_types_are_refused() -> None:
    """Only QE report certification data (6) wrapping a PEM PCK chain (5) is supported."""
    data = bytearray(vector("dcapqvl-tdx-v4").quote)
    struct.pack_into("<H", data, 636 + 128, 5)
    assert "type 5" in str(_refused(bytes(data)))


def test_collateral_round_trips_every_vector(dcap_vector: DcapVector) -> None:
    """Every vector's collateral file parses; signed JSON texts are kept byte-exact."""
    collateral = dcap_vector.collateral
    raw = json.loads(dcap_vector.collateral_text)
    assert collateral.tcb_info == raw["tcb_info"]
    assert collateral.qe_identity == raw["qe_identity"]
    assert collateral.pck_crl.hex() == raw["pck_crl"].lower()
    assert len(collateral.tcb_info_signature) == 64


def _collateral_doc() -> dict[str, object]:
    return dict(json.loads(dcap_vectors()[0].collateral_text))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("pck_crl"),
        lambda d: d.update(extra="x"),
        lambda d: d.update(root_ca_crl="zz"),
        lambda d: d.update(root_ca_crl="abc"),
        lambda d: d.update(tcb_info_signature="00" * 63),
        lambda d: d.update(qe_identity=17),
    ],
    ids=["missing", "unknown", "not-hex", "odd-hex", "short-signature", "not-a-string"],
)
def test_malformed_collateral_is_refused(change: object) -> None:
    """Missing, unknown, non-hex and mistyped collateral fields are parse errors."""
    doc = _collateral_doc()
    change(doc)  # type: ignore[operator]
    with pytest.raises(EvidenceError) as caught:
        DcapCollateral.from_json(json.dumps(doc))
    assert caught.value.step == "parse"


@pytest.mark.parametrize(
    "text",
    [b"", b"[]", b"{", b"\xff\xfe", b'{"pck_crl": "00", "pck_crl": "00"}', b"1" * 10],
    ids=["empty", "array", "truncated", "not-utf8", "duplicate-key", "number"],
)
def test_non_object_collateral_is_refused(text: bytes) -> None:
    """Collateral that is not one JSON object with unique keys is a parse error."""
    with pytest.raises(EvidenceError) as caught:
        DcapCollateral.from_json(text)
    assert caught.value.step == "parse"
