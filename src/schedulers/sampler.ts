/**
 * A sampler built from a scheduler config: the schedule rule and the update rule of one reference
 * scheduler class behind the `FlowSampler` contract.
 */
import { Tensor } from '../backend';
import { FlowDpmSolverConfig, FlowEulerConfig, FlowSchedulerConfig } from './config';
import { dpmSolverOptionsFrom, sampleFlowDpmSolver } from './flowDpmSolver';
import { sampleFlowEuler } from './flowEuler';
import { flowDpmSolverSchedule, flowEulerSchedule } from './flowSigmas';
import { FlowSampler, FlowSchedule, SampleOptions, VelocityFn } from './types';

/** Flow-DPM-Solver as configured by a `DPMSolverMultistepScheduler` config. */
export function flowDpmSolverSampler(config: FlowDpmSolverConfig, opts: { mu?: number } = {}): FlowSampler {
  const solver = dpmSolverOptionsFrom(config);
  return {
    name: 'flow_dpm_solver',
    schedule: (steps: number) => flowDpmSolverSchedule(config, steps, opts),
    sample: (model: VelocityFn, x: Tensor, schedule: FlowSchedule, sampleOpts: SampleOptions = {}) => sampleFlowDpmSolver(model, x, schedule, { ...sampleOpts, solver }),
  };
}

/** Flow-Euler as configured by a `FlowMatchEulerDiscreteScheduler` config. */
export function flowEulerSampler(config: FlowEulerConfig, opts: { mu?: number } = {}): FlowSampler {
  return {
    name: 'flow_euler',
    schedule: (steps: number) => flowEulerSchedule(config, steps, opts),
    sample: (model: VelocityFn, x: Tensor, schedule: FlowSchedule, sampleOpts: SampleOptions = {}) => sampleFlowEuler(model, x, schedule, sampleOpts),
  };
}

/** The sampler a parsed scheduler config describes. */
export function samplerFromConfig(config: FlowSchedulerConfig, opts: { mu?: number } = {}): FlowSampler {
  return config._class_name === 'DPMSolverMultistepScheduler' ? flowDpmSolverSampler(config, opts) : flowEulerSampler(config, opts);
}
