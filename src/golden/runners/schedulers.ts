/** Golden runner: scheduler cases. */
import { GoldenRunner, configClass } from '../runner';

export const schedulersRunner: GoldenRunner = {
  id: 'scheduler',
  matches: (c) => ['DPMSolverMultistepScheduler', 'FlowMatchEulerDiscreteScheduler'].includes(configClass(c)),
  run: async () => {
    throw new Error('scheduler: not implemented yet');
  },
};
