/**
 * Reads a diffusers `scheduler/scheduler_config.json` (Python JSON: it contains `-Infinity`) into a
 * typed flow scheduler config. Mirrors `SchedulerMixin.from_pretrained(..., subfolder="scheduler")`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readJsonFile } from '../json';
import { FlowSchedulerConfig, ParsedSchedulerConfig, parseFlowSchedulerConfig } from '../../schedulers/config';

/** `file` may be the JSON file or the `scheduler/` folder holding `scheduler_config.json`. */
export function readSchedulerConfig(file: string): ParsedSchedulerConfig<FlowSchedulerConfig> {
  const json = fs.existsSync(file) && fs.statSync(file).isDirectory() ? path.join(file, 'scheduler_config.json') : file;
  return parseFlowSchedulerConfig(readJsonFile(json), json);
}
