import { ApiError } from './api'

/** A refused call, with its VN_ERR_* code. */
export function ErrorBox(props: { error: unknown }) {
  if (props.error === undefined || props.error === null) return null
  const e = props.error
  const text = e instanceof ApiError ? `${e.problem.code}: ${e.problem.title}${e.problem.detail === undefined ? '' : ` (${e.problem.detail})`}` : String(e)
  return <p class="error" role="alert" data-testid="error">{text}</p>
}
