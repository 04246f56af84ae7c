<?php
/**
 * Removes the plugin's settings when it is deleted from the Plugins screen.
 *
 * @package VarAI_AI_Discovery
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

delete_option( 'varai_ai_discovery' );
