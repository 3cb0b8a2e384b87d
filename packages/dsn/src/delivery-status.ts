/** The message/delivery-status part (RFC 3464 section 2.1), which is 7bit and ASCII only. */
import { asciiHostName, asciiText, formatDate, formatField, typedAddress } from './fields.ts';
import type { DsnInput, DsnRecipient } from './types.ts';
import { envelopeIdValue, originalRecipientValue } from './xtext.ts';

/** Per-message fields in the order of the ABNF in RFC 3464 section 2.2. */
function perMessageFields(input: DsnInput): string {
  let fields = '';
  if (input.envid !== undefined) {
    fields += formatField('Original-Envelope-Id', envelopeIdValue(input.envid));
  }
  fields += formatField('Reporting-MTA', `dns; ${asciiHostName(input.reportingMta)}`);
  fields += formatField('Arrival-Date', formatDate(input.arrivalDate));
  return fields;
}

/** Per-recipient fields in the order of the ABNF in RFC 3464 section 2.3. */
function perRecipientFields(recipient: DsnRecipient): string {
  let fields = '';
  if (recipient.originalRecipient !== undefined) {
    fields += formatField(
      'Original-Recipient',
      originalRecipientValue(recipient.originalRecipient),
    );
  }
  fields += formatField('Final-Recipient', typedAddress(recipient.finalRecipient));
  fields += formatField('Action', recipient.action);
  fields += formatField('Status', recipient.status);
  // Section 2.3.5: without a remote server, Remote-MTA must be left out.
  if (recipient.remoteMta !== undefined) {
    fields += formatField('Remote-MTA', `dns; ${asciiHostName(recipient.remoteMta)}`);
  }
  if (recipient.diagnosticCode !== undefined) {
    fields += formatField('Diagnostic-Code', `smtp; ${asciiText(recipient.diagnosticCode)}`);
  }
  if (recipient.lastAttemptDate !== undefined) {
    fields += formatField('Last-Attempt-Date', formatDate(recipient.lastAttemptDate));
  }
  // Section 2.3.9: Will-Retry-Until must not appear for any action other than delayed.
  if (recipient.action === 'delayed' && recipient.willRetryUntil !== undefined) {
    fields += formatField('Will-Retry-Until', formatDate(recipient.willRetryUntil));
  }
  return fields;
}

/**
 * Writes the content of the delivery-status part: the per-message fields, then a blank line in
 * front of each recipient's group of fields.
 */
export function deliveryStatusContent(input: DsnInput): string {
  return (
    perMessageFields(input) +
    input.recipients.map((recipient) => `\r\n${perRecipientFields(recipient)}`).join('')
  );
}
