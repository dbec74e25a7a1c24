export { NormalizeAndProject, projectNap, napCallback, type NormalizeAndProjectArgs } from './layer.js';
