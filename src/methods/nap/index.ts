export { NormalizeAndProject, projectNAP, napCallback, type NormalizeAndProjectArgs } from './layer.js';
