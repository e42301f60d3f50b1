/** The contract every golden-case runner implements. */
import { GoldenCase } from './case';
import { CheckResult } from './compare';

export interface GoldenRunner {
  /** Short name of the kind of case (`sana_transformer`, `flow_dpm_solver`, ...). */
  id: string;
  /** Whether this runner handles the case (from `config.json` class names or `case.json` kind). */
  matches(c: GoldenCase): boolean;
  /** Runs the project's implementation on the case and compares every expected tensor. */
  run(c: GoldenCase): Promise<CheckResult[]>;
}

/** Class name of the case's model config (`_class_name`, or the first of `architectures`). */
export function configClass(c: GoldenCase): string {
  const cfg = c.config ?? {};
  return String(cfg._class_name ?? (Array.isArray(cfg.architectures) ? cfg.architectures[0] : '') ?? '');
}

/** The free-text `kind` of `case.json`. */
export function caseKind(c: GoldenCase): string {
  return String(c.spec.kind ?? '');
}
