<?xml version="1.0" encoding="US-ASCII" standalone="yes"?>
<q:quakeml xmlns:q="http://quakeml.org/xmlns/quakeml/1.2" xmlns="http://quakeml.org/xmlns/bed/1.2" xmlns:ingv="http://webservices.ingv.it/fdsnws/event/1">
  <eventParameters publicID="smi:webservices.ingv.it/fdsnws/event/1/query">
    <event publicID="smi:webservices.ingv.it/fdsnws/event/1/query?eventId=25883521">
      <type>earthquake</type>
      <description>
        <type>region name</type>
        <text>7 km SE Castelsantangelo sul Nera (MC)</text>
      </description>
      <preferredMagnitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91710461</preferredMagnitudeID>
      <preferredOriginID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721</preferredOriginID>
      <creationInfo>
        <agencyID>INGV</agencyID>
        <author>hew10_mole#MOD_EQASSEMBLE</author>
        <creationTime>2021-01-01T01:10:34</creationTime>
        <ingv:id_locator>289047</ingv:id_locator>
      </creationInfo>
      <origin publicID="smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721">
        <evaluationMode>manual</evaluationMode>
        <type>hypocenter</type>
        <time>
          <value>2021-01-01T01:09:10.220000</value>
          <uncertainty>0.26</uncertainty>
        </time>
        <latitude>
          <value>42.8343</value>
          <uncertainty>0.0072</uncertainty>
        </latitude>
        <longitude>
          <value>13.1877</value>
          <uncertainty>0.0098</uncertainty>
        </longitude>
        <depth>
          <value>8400</value>
          <uncertainty>1500</uncertainty>
        </depth>
        <depthType>from location</depthType>
        <originUncertainty>
          <preferredDescription>uncertainty ellipse</preferredDescription>
          <horizontalUncertainty>930.0</horizontalUncertainty>
          <minHorizontalUncertainty>555</minHorizontalUncertainty>
          <maxHorizontalUncertainty>929</maxHorizontalUncertainty>
          <azimuthMaxHorizontalUncertainty>149</azimuthMaxHorizontalUncertainty>
          <confidenceLevel>68</confidenceLevel>
        </originUncertainty>
        <quality>
          <azimuthalGap>212</azimuthalGap>
          <associatedPhaseCount>10</associatedPhaseCount>
          <usedPhaseCount>10</usedPhaseCount>
          <standardError>0.17</standardError>
          <minimumDistance>0.05396</minimumDistance>
          <maximumDistance>0.25721</maximumDistance>
          <associatedStationCount>6</associatedStationCount>
          <usedStationCount>6</usedStationCount>
        </quality>
        <evaluationStatus>reviewed</evaluationStatus>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=1</methodID>
        <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>SURVEY-INGV</author>
          <version>100</version>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704121">
          <phase>S</phase>
          <azimuth>3</azimuth>
          <distance>0.2572</distance>
          <timeResidual>-0.03</timeResidual>
          <timeWeight>48</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131661</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>106</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704141">
          <phase>S</phase>
          <azimuth>52</azimuth>
          <distance>0.2509</distance>
          <timeResidual>0.33</timeResidual>
          <timeWeight>45</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131681</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>107</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704131">
          <phase>P</phase>
          <azimuth>52</azimuth>
          <distance>0.2509</distance>
          <timeResidual>0.14</timeResidual>
          <timeWeight>24</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131671</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>107</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704111">
          <phase>P</phase>
          <azimuth>3</azimuth>
          <distance>0.2572</distance>
          <timeResidual>-0.16</timeResidual>
          <timeWeight>23</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131651</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>106</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704101">
          <phase>P</phase>
          <azimuth>340</azimuth>
          <distance>0.2149</distance>
          <timeResidual>0.12</timeResidual>
          <timeWeight>24</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131641</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>109</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704081">
          <phase>S</phase>
          <azimuth>1</azimuth>
          <distance>0.0773</distance>
          <timeResidual>-0.1</timeResidual>
          <timeWeight>49</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131621</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>134</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704061">
          <phase>S</phase>
          <azimuth>269</azimuth>
          <distance>0.0540</distance>
          <timeResidual>0.06</timeResidual>
          <timeWeight>50</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131601</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>144</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704071">
          <phase>P</phase>
          <azimuth>1</azimuth>
          <distance>0.0773</distance>
          <timeResidual>0.07</timeResidual>
          <timeWeight>50</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131611</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>134</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704051">
          <phase>P</phase>
          <azimuth>269</azimuth>
          <distance>0.0540</distance>
          <timeResidual>0.04</timeResidual>
          <timeWeight>100</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131591</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>144</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
        <arrival publicID="smi:webservices.ingv.it/fdsnws/event/1/query?arrivalId=1648704091">
          <phase>P</phase>
          <azimuth>57</azimuth>
          <distance>0.1205</distance>
          <timeResidual>-0.47</timeResidual>
          <timeWeight>45</timeWeight>
          <pickID>smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131631</pickID>
          <earthModelID>smi:webservices.ingv.it/fdsnws/event/1/query?earthModelId=1</earthModelID>
          <takeoffAngle>
            <value>122</value>
          </takeoffAngle>
          <creationInfo>
            <agencyID>INGV </agencyID>
            <author>SURVEY-INGV</author>
            <creationTime>2021-01-01T02:55:39</creationTime>
          </creationInfo>
        </arrival>
      </origin>
      <stationMagnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?stationMagnitudeId=amp-534529611">
        <mag>
          <value>1.5</value>
        </mag>
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721</originID>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=1</methodID>
        <amplitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165711</amplitudeID>
        <type>ML</type>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <comment>
          <text>original mag_type: ML</text>
        </comment>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHN" locationCode=""/>
      </stationMagnitude>
      <stationMagnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?stationMagnitudeId=amp-534529621">
        <mag>
          <value>1.4</value>
        </mag>
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721</originID>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=1</methodID>
        <amplitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165721</amplitudeID>
        <type>ML</type>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <comment>
          <text>original mag_type: ML</text>
        </comment>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HNN" locationCode=""/>
      </stationMagnitude>
      <stationMagnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?stationMagnitudeId=amp-534529631">
        <mag>
          <value>1.2</value>
        </mag>
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721</originID>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=1</methodID>
        <amplitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165731</amplitudeID>
        <type>ML</type>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <comment>
          <text>original mag_type: ML</text>
        </comment>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HNE" locationCode=""/>
      </stationMagnitude>
      <stationMagnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?stationMagnitudeId=amp-534529641">
        <mag>
          <value>1.2</value>
        </mag>
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721</originID>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=1</methodID>
        <amplitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165741</amplitudeID>
        <type>ML</type>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <comment>
          <text>original mag_type: ML</text>
        </comment>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHE" locationCode=""/>
      </stationMagnitude>
      <magnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91710461">
        <stationCount>4</stationCount>
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85930721</originID>
        <type>ML</type>
        <mag>
          <value>1.3</value>
          <uncertainty>0.2</uncertainty>
        </mag>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=1</methodID>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>Sala Sismica INGV-Roma</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
      </magnitude>
      <magnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91707821">
        <stationCount>1</stationCount>
        <originID>smi:webservices.ingv.it/fdsnws/event/1/query?originId=85928671</originID>
        <type>ML</type>
        <mag>
          <value>1.4</value>
          <uncertainty>0.0</uncertainty>
        </mag>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodId=3</methodID>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>Sistema Automatico Earthworm-10</author>
          <creationTime>2021-01-01T01:12:30</creationTime>
        </creationInfo>
      </magnitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470154831">
        <genericAmplitude>
          <value>0.000301</value>
        </genericAmplitude>
        <period>
          <value>0.96</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0.48</begin>
          <end>0</end>
          <reference>2021-01-01T01:09:15.35</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>hew10_mole#MOD_LOCALMAG_FINAL</author>
          <creationTime>2021-01-01T01:12:30</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HNE" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470154841">
        <genericAmplitude>
          <value>0.0005115</value>
        </genericAmplitude>
        <period>
          <value>1.16</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0</begin>
          <end>0.58</end>
          <reference>2021-01-01T01:09:14.11</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>hew10_mole#MOD_LOCALMAG_FINAL</author>
          <creationTime>2021-01-01T01:12:30</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HNN" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470154851">
        <genericAmplitude>
          <value>0.0002595</value>
        </genericAmplitude>
        <period>
          <value>0.4</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0.2</begin>
          <end>0</end>
          <reference>2021-01-01T01:09:15.34</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>hew10_mole#MOD_LOCALMAG_FINAL</author>
          <creationTime>2021-01-01T01:12:30</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHE" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470154861">
        <genericAmplitude>
          <value>0.0005725</value>
        </genericAmplitude>
        <period>
          <value>0.12</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0.06</begin>
          <end>0</end>
          <reference>2021-01-01T01:09:14.10</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>hew10_mole#MOD_LOCALMAG_FINAL</author>
          <creationTime>2021-01-01T01:12:30</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHN" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165711">
        <genericAmplitude>
          <value>0.0005725</value>
        </genericAmplitude>
        <period>
          <value>0.12</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0.06</begin>
          <end>0</end>
          <reference>2021-01-01T01:09:14.10</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHN" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165721">
        <genericAmplitude>
          <value>0.0005115</value>
        </genericAmplitude>
        <period>
          <value>1.16</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0</begin>
          <end>0.58</end>
          <reference>2021-01-01T01:09:14.11</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HNN" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165731">
        <genericAmplitude>
          <value>0.000301</value>
        </genericAmplitude>
        <period>
          <value>1.04</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0</begin>
          <end>0.52</end>
          <reference>2021-01-01T01:09:14.35</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HNE" locationCode=""/>
      </amplitude>
      <amplitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?amplitudeId=amp-470165741">
        <genericAmplitude>
          <value>0.0002595</value>
        </genericAmplitude>
        <period>
          <value>0.4</value>
        </period>
        <unit>m</unit>
        <category>other</category>
        <type>AML</type>
        <comment>
          <text>Wood-Anderson amplitude</text>
        </comment>
        <timeWindow>
          <begin>0.2</begin>
          <end>0</end>
          <reference>2021-01-01T01:09:15.34</reference>
        </timeWindow>
        <creationInfo>
          <agencyID>INGV</agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHE" locationCode=""/>
      </amplitude>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503124821">
        <time>
          <value>2021-01-01T01:09:12.33</value>
          <uncertainty>0.1</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=1401</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>positive</polarity>
        <evaluationMode>automatic</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>hew10_mole#MOD_EQASSEMBLE</author>
          <creationTime>2021-01-01T01:10:34</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131591">
        <time>
          <value>2021-01-01T01:09:12.33</value>
          <uncertainty>0.1</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>positive</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503124831">
        <time>
          <value>2021-01-01T01:09:12.69</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=1401</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>negative</polarity>
        <evaluationMode>automatic</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>hew10_mole#MOD_EQASSEMBLE</author>
          <creationTime>2021-01-01T01:10:34</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MC2" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131611">
        <time>
          <value>2021-01-01T01:09:12.69</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>negative</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MC2" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131631">
        <time>
          <value>2021-01-01T01:09:12.92</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>positive</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MMO1" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503124841">
        <time>
          <value>2021-01-01T01:09:12.92</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=1401</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>positive</polarity>
        <evaluationMode>automatic</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>hew10_mole#MOD_EQASSEMBLE</author>
          <creationTime>2021-01-01T01:10:34</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MMO1" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131601">
        <time>
          <value>2021-01-01T01:09:13.85</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>S</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="NRCA" channelCode="HHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131621">
        <time>
          <value>2021-01-01T01:09:14.27</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>S</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MC2" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131641">
        <time>
          <value>2021-01-01T01:09:15.41</value>
          <uncertainty>1.0</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="FDMO" channelCode="HHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503124851">
        <time>
          <value>2021-01-01T01:09:15.41</value>
          <uncertainty>1.0</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=1401</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>automatic</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>hew10_mole#MOD_EQASSEMBLE</author>
          <creationTime>2021-01-01T01:10:34</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="FDMO" channelCode="HHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131651">
        <time>
          <value>2021-01-01T01:09:16.04</value>
          <uncertainty>1.0</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="CSP1" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503124871">
        <time>
          <value>2021-01-01T01:09:16.04</value>
          <uncertainty>1.0</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=1401</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>automatic</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>hew10_mole#MOD_EQASSEMBLE</author>
          <creationTime>2021-01-01T01:10:34</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="CSP1" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131671">
        <time>
          <value>2021-01-01T01:09:16.20</value>
          <uncertainty>1.0</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>positive</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MF5" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503124861">
        <time>
          <value>2021-01-01T01:09:16.20</value>
          <uncertainty>1.0</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=1401</methodID>
        <onset>questionable</onset>
        <phaseHint>P</phaseHint>
        <polarity>positive</polarity>
        <evaluationMode>automatic</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>hew10_mole#MOD_EQASSEMBLE</author>
          <creationTime>2021-01-01T01:10:34</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MF5" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131661">
        <time>
          <value>2021-01-01T01:09:20.54</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>S</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="CSP1" channelCode="EHZ" locationCode=""/>
      </pick>
      <pick publicID="smi:webservices.ingv.it/fdsnws/event/1/query?pickId=503131681">
        <time>
          <value>2021-01-01T01:09:20.66</value>
          <uncertainty>0.6</uncertainty>
        </time>
        <methodID>smi:webservices.ingv.it/fdsnws/event/1/query?methodID=9</methodID>
        <onset>questionable</onset>
        <phaseHint>S</phaseHint>
        <polarity>undecidable</polarity>
        <evaluationMode>manual</evaluationMode>
        <creationInfo>
          <agencyID>INGV </agencyID>
          <author>SURVEY-INGV</author>
          <creationTime>2021-01-01T02:55:39</creationTime>
        </creationInfo>
        <waveformID networkCode="IV" stationCode="MF5" channelCode="EHZ" locationCode=""/>
      </pick>
    </event>
  </eventParameters>
</q:quakeml>
