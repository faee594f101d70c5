// The wire format only: this is what the root helper loads. The client (which pulls in the
// descriptor-passing socket code the helper does not need) is `@guard/protocol/client`.
export * from './wire';
