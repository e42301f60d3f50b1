/** Flow samplers (Flow-DPM-Solver, Flow-Euler), their schedules and scheduler configs. */
export * from './types';
export * from './config';
export * from './flowSigmas';
export * from './flowEuler';
export * from './flowDpmSolver';
export * from './sampler';
