"""The kernels' input/output contract: named columns of every array they fill, and their allocation.

One home for the layout: the kernels index by these constants, the engine turns the arrays into
tables by these names, results and tests decode ledgers with :func:`ledger_columns`. Names of
output columns are the Parquet column names they become. Adding a provider kind means adding it
to :data:`PROVIDER_KINDS` (its draw, need, failure, claim and reimbursement columns follow) and
giving the scenario and the plan a row for it.

Every index is a module-level int, so numba folds it into the compiled code as a constant.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# ----------------------------------------------------------------------------------- providers
PROVIDER_KINDS = ("commitment", "guarantee", "liquidity")  # column order (new kinds go last)
ASK_ORDER = ("liquidity", "commitment", "guarantee")  # the order providers are asked to cover a shortfall
N_PROVIDER_KINDS = len(PROVIDER_KINDS)
K_COMMITMENT = PROVIDER_KINDS.index("commitment")
K_GUARANTEE = PROVIDER_KINDS.index("guarantee")
K_LIQUIDITY = PROVIDER_KINDS.index("liquidity")  # advances fees and interest only, repaid senior to interest

# ------------------------------------------------- per-tranche outputs: (paths, bases, tranches, N_TRANCHE_OUT)
BASIS_STANDALONE, BASIS_ENHANCED = 0, 1  # standalone: no provider is asked
TRANCHE_OUT = ("loss_fraction", "pv_loss_fraction", "interest_shortfall_amount", "first_shortfall_period",
               "wal_years", "defaulted", *(f"{kind}_draw_amount" for kind in PROVIDER_KINDS))
N_TRANCHE_OUT = len(TRANCHE_OUT)
T_LOSS = TRANCHE_OUT.index("loss_fraction")
T_PV_LOSS = TRANCHE_OUT.index("pv_loss_fraction")
T_INTEREST_SHORTFALL = TRANCHE_OUT.index("interest_shortfall_amount")
T_FIRST_SHORTFALL = TRANCHE_OUT.index("first_shortfall_period")  # 1-based period; -1 = never
T_WAL = TRANCHE_OUT.index("wal_years")
T_DEFAULTED = TRANCHE_OUT.index("defaulted")  # 0 or 1
T_DRAW = TRANCHE_OUT.index(f"{PROVIDER_KINDS[0]}_draw_amount")  # kind j's draws at T_DRAW + j
TRANCHE_DRAWS = TRANCHE_OUT[T_DRAW:T_DRAW + N_PROVIDER_KINDS]

# ----------------------------------------------------------------- per-path pool outputs: (paths, N_POOL_OUT)
POOL_OUT = ("licensee_defaults", "obsolete_technologies", "invalidations", "collections_amount",
            "global_factor", "chi2_mixing")
N_POOL_OUT = len(POOL_OUT)
P_DEFAULTS = POOL_OUT.index("licensee_defaults")
P_OBSOLETE = POOL_OUT.index("obsolete_technologies")
P_INVALIDATED = POOL_OUT.index("invalidations")
P_COLLECTIONS = POOL_OUT.index("collections_amount")
P_Z_GLOBAL = POOL_OUT.index("global_factor")
P_CHI2 = POOL_OUT.index("chi2_mixing")  # NaN without a Student-t copula

# ------------------------------------- per-path waterfall outputs, enhanced basis: (paths, N_PATH_OUT)
# provider flags first (0/1), then what is still owed to each provider kind at legal final, then
# the clean-up call's period
FLAG_WHAT = ("needed", "provider_failed")  # asked for a shortfall; asked after its own default
F_NEEDED, F_FAILED = 0, 1
FLAGS = tuple(f"{kind}_{what}" for kind in PROVIDER_KINDS for what in FLAG_WHAT)  # kind j at 2 j + F_*
N_FLAGS = len(FLAGS)
CLAIMS = tuple(f"{kind}_unreimbursed_amount" for kind in PROVIDER_KINDS)  # kind j at N_FLAGS + j
PATH_OUT = (*FLAGS, *CLAIMS, "call_period")
N_PATH_OUT = len(PATH_OUT)
W_UNREIMBURSED = PATH_OUT.index(CLAIMS[0])
W_CALL_PERIOD = PATH_OUT.index("call_period")  # 1-based period of the clean-up call; -1 = never

# ------------------------------------- per-path provider outputs: (paths, providers, N_PROVIDER_OUT)
PROVIDER_OUT = ("latent_normal", "default_period", "worst_grade")
N_PROVIDER_OUT = len(PROVIDER_OUT)
PR_LATENT = PROVIDER_OUT.index("latent_normal")  # its idiosyncratic normal as drawn (migration: the mean of its years')
PR_DEFAULT_PERIOD = PROVIDER_OUT.index("default_period")  # 0-based; periods = never
PR_WORST_GRADE = PROVIDER_OUT.index("worst_grade")  # index on its migration scale (default last); -1 without

# --------------------------------------------------------------------- waterfall state (scratch)
# rows are tranches for the S_* tranche columns, providers for S_PROVIDER_USED and S_CLAIM, triggers
# for the S_TRIGGER_* columns and provider kinds for S_KIND_DRAWN and S_KIND_REIMBURSED
STATE = ("wal_numerator", "missed_interest", "interest_due", "interest_paid", "principal_paid",
         *(f"{kind}_draw" for kind in PROVIDER_KINDS),
         "provider_used", "trigger_breach", "trigger_latched", "kind_drawn", "claim", "kind_reimbursed")
STATE_COLUMNS = len(STATE)
S_WAL_NUMERATOR = STATE.index("wal_numerator")  # years x principal paid
S_MISSED = STATE.index("missed_interest")  # 1: a non-deferrable interest payment was missed
S_INTEREST_DUE = STATE.index("interest_due")  # this period
S_INTEREST_PAID = STATE.index("interest_paid")  # this period
S_PRINCIPAL_PAID = STATE.index("principal_paid")  # this period
S_DRAW = STATE.index(f"{PROVIDER_KINDS[0]}_draw")  # this period's draws of kind j at S_DRAW + j
S_PROVIDER_USED = STATE.index("provider_used")  # a provider's draws so far (against its cap)
S_TRIGGER_BREACH = STATE.index("trigger_breach")  # consecutive periods in breach
S_TRIGGER_LATCHED = STATE.index("trigger_latched")  # a non-curable trigger that has fired
S_KIND_DRAWN = STATE.index("kind_drawn")  # this period's draws of a provider kind, all tranches
S_CLAIM = STATE.index("claim")  # a provider's claim: reimbursable draws (with interest) not yet repaid
S_KIND_REIMBURSED = STATE.index("kind_reimbursed")  # this period's repayments to a provider kind


def state_rows(tranches: int, triggers: int, providers: int) -> int:
    """Rows of the waterfall state: enough for every tranche, trigger, provider and kind."""
    return max(tranches, triggers, providers, N_PROVIDER_KINDS)


# ------------------------------------------------------------------ ledgers: (paths, periods, width)
LEDGER_DEAL = ("collections_amount", "fees_paid_amount", "reserve_start_amount", "reserve_end_amount",
               *(f"{kind}_draw_amount" for kind in PROVIDER_KINDS), "residual_amount",
               "cumulative_default_rate", "dscr", "icr", "oc", "sequential", "trap", "accelerated",
               "fees_due_amount", *(f"{kind}_reimbursed_amount" for kind in PROVIDER_KINDS),
               *(f"{kind}_claim_amount" for kind in PROVIDER_KINDS), "trap_fraction", "early_amortisation", "called")
LEDGER_RATIOS = ("dscr", "icr", "oc")  # not cash flows
LEDGER_TRANCHE = ("interest_due_amount", "interest_paid_amount", "principal_paid_amount", "balance_amount",
                  "interest_carried_amount", *(f"{kind}_draw_amount" for kind in PROVIDER_KINDS))
N_LEDGER_DEAL = len(LEDGER_DEAL)
N_LEDGER_TRANCHE = len(LEDGER_TRANCHE)
L_COLLECTIONS = LEDGER_DEAL.index("collections_amount")
L_FEES_PAID = LEDGER_DEAL.index("fees_paid_amount")
L_RESERVE_START = LEDGER_DEAL.index("reserve_start_amount")
L_RESERVE_END = LEDGER_DEAL.index("reserve_end_amount")
L_DRAW = LEDGER_DEAL.index(f"{PROVIDER_KINDS[0]}_draw_amount")  # kind j at L_DRAW + j
L_RESIDUAL = LEDGER_DEAL.index("residual_amount")
L_CDR = LEDGER_DEAL.index("cumulative_default_rate")
L_DSCR = LEDGER_DEAL.index("dscr")  # collections / (fees + interest + scheduled principal)
L_ICR = LEDGER_DEAL.index("icr")  # collections / (fees + interest)
L_OC = LEDGER_DEAL.index("oc")  # collateral value / notes at the period's start; NaN without an OC trigger
L_SEQUENTIAL = LEDGER_DEAL.index("sequential")
L_TRAP = LEDGER_DEAL.index("trap")
L_ACCELERATED = LEDGER_DEAL.index("accelerated")
L_FEES_DUE = LEDGER_DEAL.index("fees_due_amount")
L_REIMBURSED = LEDGER_DEAL.index(f"{PROVIDER_KINDS[0]}_reimbursed_amount")  # kind j at L_REIMBURSED + j
L_CLAIM = LEDGER_DEAL.index(f"{PROVIDER_KINDS[0]}_claim_amount")  # kind j's claims at the period's end
L_TRAP_FRACTION = LEDGER_DEAL.index("trap_fraction")  # share of the excess cash trapped (0 = none)
L_EARLY = LEDGER_DEAL.index("early_amortisation")
L_CALLED = LEDGER_DEAL.index("called")  # 1 from the clean-up call's period on
LT_INTEREST_DUE = LEDGER_TRANCHE.index("interest_due_amount")
LT_INTEREST_PAID = LEDGER_TRANCHE.index("interest_paid_amount")
LT_PRINCIPAL_PAID = LEDGER_TRANCHE.index("principal_paid_amount")
LT_BALANCE = LEDGER_TRANCHE.index("balance_amount")
LT_CARRIED = LEDGER_TRANCHE.index("interest_carried_amount")
LT_DRAW = LEDGER_TRANCHE.index(f"{PROVIDER_KINDS[0]}_draw_amount")  # kind j at LT_DRAW + j


def ledger_width(tranches: int) -> int:
    """Columns of one period's ledger row: the deal block, then one block per tranche."""
    return N_LEDGER_DEAL + tranches * N_LEDGER_TRANCHE


def ledger_columns(tranche_names) -> list[tuple[str, str, int]]:
    """(owner, item, column) of every ledger column; owner is ``"deal"`` or a tranche name."""
    cols = [("deal", name, i) for i, name in enumerate(LEDGER_DEAL)]
    for k, tranche in enumerate(tranche_names):
        cols += [(tranche, name, N_LEDGER_DEAL + k * N_LEDGER_TRANCHE + j) for j, name in enumerate(LEDGER_TRANCHE)]
    return cols


# ----------------------------------------------------------------------------------- allocation
class ChunkOutputs(NamedTuple):
    """What :func:`simengine._kernels.chunk.simulate_chunk` fills for n paths.

    tranche : ndarray(float64), shape (n, 2, tranches, N_TRANCHE_OUT)   bases: BASIS_*
    triggers : ndarray(uint8), shape (n, triggers)       1 if the trigger was ever active (enhanced)
    flags : ndarray(float64), shape (n, N_PATH_OUT)      provider flags, claims, call (enhanced): PATH_OUT
    pool : ndarray(float64), shape (n, N_POOL_OUT)
    cum_default : ndarray(float32), shape (n, periods)   cumulative licensee default fraction (count)
    weights : ndarray(float64), shape (n,)               likelihood ratios (1 for plain Monte Carlo)
    provider : ndarray(float64), shape (n, providers, N_PROVIDER_OUT)   PR_* columns per provider row
    """

    tranche: np.ndarray
    triggers: np.ndarray
    flags: np.ndarray
    pool: np.ndarray
    cum_default: np.ndarray
    weights: np.ndarray
    provider: np.ndarray


def allocate_chunk(paths: int, tranches: int, triggers: int, periods: int, providers: int) -> ChunkOutputs:
    """Zeroed outputs for a chunk of ``paths`` paths."""
    return ChunkOutputs(tranche=np.zeros((paths, 2, tranches, N_TRANCHE_OUT)),
                        triggers=np.zeros((paths, triggers), np.uint8), flags=np.zeros((paths, N_PATH_OUT)),
                        pool=np.zeros((paths, N_POOL_OUT)), cum_default=np.zeros((paths, periods), np.float32),
                        weights=np.zeros(paths), provider=np.zeros((paths, providers, N_PROVIDER_OUT)))


def allocate_ledgers(paths: int, periods: int, tranches: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed (ledgers, collections): shapes (paths, periods, ledger width) and (paths, periods)."""
    return np.zeros((paths, periods, ledger_width(tranches))), np.zeros((paths, periods))


class Scratch(NamedTuple):
    """Working arrays of the path functions, one set per slot (leading axis): a slot's blocks of
    paths run one after another on one thread, so the kernels allocate nothing of their own.

    Pool (:func:`simengine._kernels.pool.pool_block`), each with a leading ``slots`` axis:
    g_global (periods,), factors (factors,), demand_x and clock (industries, periods),
    clock_start (industries, periods) int64 and clock_scale (industries,), screen
    (industries, technologies) int64, obs_period (technologies,) int64, licensee_period
    (3 licensees,) int64 (periods, then a queue of licensees and its float64 latents),
    group_diff (groups, periods + 1) zero between paths, cdr_diff and count_diff (periods + 1,),
    oc_sched and oc_lost (OC bases, periods + 1) zero between paths.
    Between the two, one row per path of a block (``block`` rows, at least the paths a kernel
    call gets): collections, cdr and oc_value (block, periods), provider_period (block,
    providers) int64. Waterfall (:func:`simengine._kernels.waterfall.waterfall_path`): balance
    and carry (tranches,), state (state rows, STATE_COLUMNS), and per basis res (2, tranches,
    N_TRANCHE_OUT), trig (2, triggers) uint8, flags (2, N_PATH_OUT).
    """

    g_global: np.ndarray
    factors: np.ndarray
    demand_x: np.ndarray
    clock: np.ndarray
    clock_start: np.ndarray
    clock_scale: np.ndarray
    screen: np.ndarray
    obs_period: np.ndarray
    licensee_period: np.ndarray
    group_diff: np.ndarray
    cdr_diff: np.ndarray
    count_diff: np.ndarray
    oc_sched: np.ndarray
    oc_lost: np.ndarray
    oc_value: np.ndarray
    collections: np.ndarray
    cdr: np.ndarray
    provider_period: np.ndarray
    balance: np.ndarray
    carry: np.ndarray
    state: np.ndarray
    res: np.ndarray
    trig: np.ndarray
    flags: np.ndarray


def allocate_scratch(slots: int, periods: int, factors: int, industries: int, technologies: int, licensees: int,
                     groups: int, providers: int, tranches: int, triggers: int, oc_bases: int = 0,
                     block: int = 1) -> Scratch:
    """Working arrays for ``slots`` slots (see :class:`Scratch`); ``group_diff`` starts at zero."""
    T, i8 = periods, np.int64
    return Scratch(
        g_global=np.empty((slots, T)), factors=np.empty((slots, factors)),
        demand_x=np.empty((slots, industries, T)), clock=np.empty((slots, industries, T)),
        clock_start=np.empty((slots, industries, T), i8), clock_scale=np.empty((slots, industries)),
        screen=np.empty((slots, industries, technologies), i8), obs_period=np.empty((slots, technologies), i8),
        licensee_period=np.empty((slots, 3 * licensees), i8), group_diff=np.zeros((slots, groups, T + 1)),
        cdr_diff=np.empty((slots, T + 1)), count_diff=np.empty((slots, T + 1)),
        oc_sched=np.zeros((slots, oc_bases, T + 1)), oc_lost=np.zeros((slots, oc_bases, T + 1)),
        oc_value=np.empty((slots, block, T)), collections=np.empty((slots, block, T)), cdr=np.empty((slots, block, T)),
        provider_period=np.empty((slots, block, providers), i8),
        balance=np.empty((slots, tranches)), carry=np.empty((slots, tranches)),
        state=np.empty((slots, state_rows(tranches, triggers, providers), STATE_COLUMNS)),
        res=np.empty((slots, 2, tranches, N_TRANCHE_OUT)), trig=np.empty((slots, 2, triggers), np.uint8),
        flags=np.empty((slots, 2, N_PATH_OUT)))
