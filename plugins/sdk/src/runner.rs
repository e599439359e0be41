//! State handling and batching around [`Plugin::evaluate`], shared by the wasm glue
//! and native callers, so both run exactly the same code.

use crate::Plugin;
use crate::types::{BatchEvaluation, Device, EvalError, Evaluation, Message};

/// Decodes the stored state (`None`: a device seen for the first time).
pub fn load_state<P: Plugin>(bytes: Option<&[u8]>) -> Result<P::State, EvalError> {
    match bytes {
        None | Some([]) => Ok(P::State::default()),
        Some(b) => serde_json::from_slice(b).map_err(|e| EvalError::BadState(e.to_string())),
    }
}

/// Encodes the state for the host to keep.
pub fn save_state<P: Plugin>(state: &P::State) -> Result<Vec<u8>, EvalError> {
    serde_json::to_vec(state).map_err(|e| EvalError::BadState(e.to_string()))
}

/// Evaluates one message.
pub fn evaluate<P: Plugin>(
    device: &Device,
    message: &Message,
    state: Option<&[u8]>,
) -> Result<Evaluation, EvalError> {
    let mut st = load_state::<P>(state)?;
    let outcome = P::evaluate(device, message, &mut st)?;
    Ok(Evaluation { outcome, state: save_state::<P>(&st)? })
}

/// Evaluates several messages of one device in order, decoding and encoding the
/// state once. If the state cannot be decoded, every outcome is that error and the
/// state comes back unchanged (the host then retries with no state).
pub fn evaluate_batch<P: Plugin>(
    device: &Device,
    messages: &[Message],
    state: Option<&[u8]>,
) -> BatchEvaluation {
    let unchanged = || state.map(<[u8]>::to_vec).unwrap_or_default();
    let mut st = match load_state::<P>(state) {
        Ok(st) => st,
        Err(e) => {
            return BatchEvaluation {
                outcomes: messages.iter().map(|_| Err(e.clone())).collect(),
                state: unchanged(),
            };
        }
    };
    let outcomes = messages.iter().map(|m| P::evaluate(device, m, &mut st)).collect();
    match save_state::<P>(&st) {
        Ok(state) => BatchEvaluation { outcomes, state },
        Err(e) => BatchEvaluation {
            outcomes: messages.iter().map(|_| Err(e.clone())).collect(),
            state: unchanged(),
        },
    }
}
