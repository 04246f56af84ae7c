<?php
/**
 * VarAI AI Discovery for Magento 2.
 */
declare(strict_types=1);

use Magento\Framework\Component\ComponentRegistrar;

ComponentRegistrar::register(ComponentRegistrar::MODULE, 'VarAI_AIDiscovery', __DIR__);
